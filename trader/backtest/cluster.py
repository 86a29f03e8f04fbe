"""Where a sweep's chunks run: a Dask client on a LocalCluster of processes, or on a scheduler's address.

The default is a ``distributed.LocalCluster`` of ``workers`` processes with
one thread each (a chunk is one numba/numpy-bound call: threads would share
one GIL), started for the sweep and closed after it. ``scheduler`` connects to
a running cluster instead (``tcp://HOST:PORT``, the same code): an address
that does not answer within ``CONNECT_TIMEOUT`` seconds is an
:class:`~trader.errors.Unavailable` naming it, raised before anything is
computed or written. A caller that holds a client (the walk-forward, which
sweeps once per window) passes it and keeps it open.

A worker process that dies mid-task (killed, out of memory) costs only the
chunks it was running: the scheduler reschedules them on the other workers,
and the local cluster's nanny starts a new worker. A chunk lost with
``ALLOWED_FAILURES + 1`` workers is given up (KilledWorker): a chunk that
kills every worker it touches is a bug or a budget too large, not bad luck.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from trader.errors import Unavailable, ValidationError

__all__ = ["ALLOWED_FAILURES", "CONNECT_TIMEOUT", "connect", "suspicious", "worker_pids"]

log = logging.getLogger(__name__)

ALLOWED_FAILURES = 2  # a chunk is re-run after losing its worker twice; the third loss is its own fault
CONNECT_TIMEOUT = 3.0  # seconds to reach a scheduler before it is called unreachable


@contextlib.contextmanager
def connect(*, workers: int | None = None, scheduler: str | None = None, client: Any = None) -> Iterator[Any]:
    """Yield a ``distributed.Client``: ``client`` as given, one on ``scheduler``, or on a new LocalCluster."""
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise ValidationError("--workers and --scheduler exclude each other: a cluster brings its own workers")
        try:
            remote = Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"no Dask scheduler answers at {scheduler} within {CONNECT_TIMEOUT:g} s: {exc}") from None
        except ValueError as exc:  # a malformed address
            raise ValidationError(f"--scheduler {scheduler!r}: {exc}") from None
        try:
            yield remote
        finally:
            remote.close()
        return
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count < 1:
        raise ValidationError(f"--workers must be at least 1, got {count}")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        # loopback only, the status page on a free port (not 8787, which another cluster may hold);
        # a chunk's error reaches the caller, so the cluster's own log is silenced
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    try:
        local = Client(cluster, set_as_default=False)
        try:
            yield local
        finally:
            local.close()
    finally:
        cluster.close()


def worker_pids(client: Any) -> dict[str, int]:
    """Return worker address -> process id (for tests and the memory benchmark)."""
    return dict(client.run(os.getpid))


def _suspicious(dask_scheduler: Any, keys: list[str]) -> dict[str, int]:
    return {key: dask_scheduler.tasks[key].suspicious for key in keys if key in dask_scheduler.tasks}


def suspicious(client: Any, keys: list[str]) -> int:
    """Return how many of ``keys`` the scheduler had to run again after losing their worker."""
    try:
        counts = client.run_on_scheduler(_suspicious, keys=keys)
    except Exception as exc:  # noqa: BLE001 - a scheduler may refuse run_on_scheduler; the count is informative
        log.debug("cannot read the scheduler's retry counts: %s", exc)
        return 0
    return sum(1 for count in counts.values() if count > 0)
