"""The durable job store: a job table and an append-only transition journal, in SQLite (one
file, the embedded default) or PostgreSQL (a group's shared service).

Every status change is a compare-and-set: it applies only if the stored status is still the one
the caller expected and Ganga's graph allows the move, and it is written together with its
journal row in one transaction. A batch commits in one transaction. Job creation is journaled
too (old status NULL), so replaying the journal reproduces the job table exactly.
"""

from __future__ import annotations

from ._base import JobStore as JobStore
from ._location import is_postgresql_url as is_postgresql_url, redacted as redacted
from ._open import open_store as open_store
from ._records import (
    JobRecord as JobRecord,
    JournalEntry as JournalEntry,
    NewJob as NewJob,
    Outcome as Outcome,
    StoreStatistics as StoreStatistics,
    Transition as Transition,
)
from ._sqlite import (
    APPLICATION_ID as APPLICATION_ID,
    SCHEMA_VERSION as SCHEMA_VERSION,
    Store as Store,
)
