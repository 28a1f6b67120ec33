"""The run store: one folder per run under cached_models/; the only code that knows its file names.

store.RunStore reads and writes a run, listing.RunListing lists the store, disk holds the atomic writes and the
liveness checks of a run's writer, names the file names."""

from core.records import ACTIVE, FINAL, STATUSES  # noqa: F401  (the statuses, for the store's callers)
from core.store.disk import (  # noqa: F401
    StoreError,
    check_name,
    check_run_id,
    now_iso,
    owner,
    pid_alive,
    process_started,
)
from core.store.listing import RunInfo  # noqa: F401
from core.store.store import DEFAULT_ROOT, RunStore  # noqa: F401
