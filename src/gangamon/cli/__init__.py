"""gangamon's faces: the `gangamon` command and what only it uses (the configuration file,
job ids as users type them, the `run` service and its metrics, the live view, `doctor`, the
demo, logging). The core (engine, store, backends) never imports them.
"""

from ._commands import main as main
