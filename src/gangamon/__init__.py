"""gangamon: job monitoring for Ganga-style job management, on trio's structured concurrency."""

from ._astore import AsyncStore as AsyncStore
from ._engine import (
    Monitor as Monitor,
    MonitorStatistics as MonitorStatistics,
    open_monitor as open_monitor,
)
from ._errors import (
    DuplicateJob as DuplicateJob,
    GangamonError as GangamonError,
    StaleTransition as StaleTransition,
    StoreError as StoreError,
    UnknownJob as UnknownJob,
)
from ._fetch import Fetched as Fetched, fetch_output as fetch_output
from ._status import (
    ACTIVE as ACTIVE,
    FINAL as FINAL,
    TRANSITIONS as TRANSITIONS,
    IllegalTransition as IllegalTransition,
    Status as Status,
    UnknownStatus as UnknownStatus,
    can_transition as can_transition,
    check_transition as check_transition,
    master_status as master_status,
    parse_status as parse_status,
)
from ._store import (
    JobRecord as JobRecord,
    JobStore as JobStore,
    JournalEntry as JournalEntry,
    NewJob as NewJob,
    Outcome as Outcome,
    Store as Store,
    StoreStatistics as StoreStatistics,
    Transition as Transition,
    open_store as open_store,
)
from ._subscribe import SubscriberLagged as SubscriberLagged, Subscription as Subscription
from ._supervise import BackendStatistics as BackendStatistics
from .backends import (
    AsyncioBackend as AsyncioBackend,
    Backend as Backend,
    BackendError as BackendError,
    BackendSettings as BackendSettings,
    JobRef as JobRef,
    ThreadedBackend as ThreadedBackend,
    Update as Update,
)

__version__ = "0.1.0"

from ._public import report_public as _report_public

_report_public(__name__, globals())
