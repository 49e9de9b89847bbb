"""gangamon inside the real `ganga` package (8.7.12): `install()` replaces Ganga's monitoring.

One line of `.gangarc` turns it on for every session (Ganga then loads this package as a
runtime package: `loadPlugins` defines the `[gangamon]` section, `postBootstrapHook` installs
gangamon)::

    [Configuration]
    RUNTIME_PATH = GangaDirac:gangamon.ganga

or, from a Ganga startup file or after `import ganga.ganga`::

    import gangamon.ganga
    gangamon.ganga.install()

Ganga's AsyncMonitoringService is stopped and a `GangamonService` takes its place in
`GangaCore.Core.monitoring_component`, where Ganga's `enableMonitoring`, `disableMonitoring`,
`runMonitoring` and its shutdown find it. Nothing of Ganga is imported until one of these is
called.
"""

from .._public import report_public as _report_public
from ._install import (
    install as install,
    loadPlugins as loadPlugins,
    postBootstrapHook as postBootstrapHook,
    read_options as read_options,
)
from ._options import GangamonOptions as GangamonOptions, OptionError as OptionError
from ._select import BadJobSelection as BadJobSelection, select_jobs as select_jobs
from ._service import GangaHooks as GangaHooks, GangamonService as GangamonService

_report_public(__name__, globals())
