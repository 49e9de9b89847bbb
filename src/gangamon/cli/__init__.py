"""gangamon's faces: the `gangamon` command and what only it uses (the configuration file,
job ids as users type them, the `run` service and its metrics, the live view, `doctor`, the
demo, logging). The core (engine, store, backends) never imports them.
"""

# The commands of these modules join the group (`_app.cli`) as they are imported.
from . import _init, _jobs, _listing, _sim  # noqa: F401
from ._commands import main as main
