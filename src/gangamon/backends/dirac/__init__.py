"""DIRAC: its job states, wire formats, HTTPS transport and the backend."""

from ..._public import report_public as _report_public
from ._backend import (
    DIRAC_SETTINGS as DIRAC_SETTINGS,
    DiracBackend as DiracBackend,
    DiracTransport as DiracTransport,
)
from ._client import DiracClientTransport as DiracClientTransport
from ._https import DiracHttps as DiracHttps
from ._proxy import check_proxy as check_proxy, proxy_location as proxy_location
from ._states import (
    DiracStatus as DiracStatus,
    can_move as can_move,
    ganga_status as ganga_status,
)
from ._wire import DiracError as DiracError, WireError as WireError

_report_public(__name__, globals())
