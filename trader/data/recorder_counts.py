"""The tick recorder's counters on disk: ticks received, written, discarded and malformed, kept through a kill -9.

Four unsigned 64-bit counters in a small file mapped into memory
(``MAP_SHARED``): bumping one is a store to memory, cheap enough for every
tick, and what was stored is in the kernel's page cache the moment it is
stored, so it outlives the process however it dies (only the machine going
down can lose it). The next start reads them: ``received - written -
discarded - malformed`` ticks were taken off the bus and never reached the store, which
is exactly what a kill -9 lost (the open batch, and what the writer had not
finished). A count is bumped after its ticks are written, never before, so
the figure is never less than what was lost; a kill between a write and its
count can only overstate it by that key's rows.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

from trader.errors import StorageError

log = logging.getLogger(__name__)

__all__ = ["RecorderCounts"]

MAGIC = int.from_bytes(b"TICKREC1", "little")
_SLOTS = 5  # magic, received, written, discarded, malformed (a file of 4 from before grows: malformed 0)
_RECEIVED, _WRITTEN, _DISCARDED, _MALFORMED = 1, 2, 3, 4


class RecorderCounts:
    """Counters of one recorder, in the file ``path`` (made if missing); see the module docstring.

    ``previous_lost`` is what the last run left unwritten (0 after a clean
    stop); the counters then start again from 0. ``received`` belongs to the
    receiving thread, ``written``, ``discarded`` and ``malformed`` (payloads
received that were not ticks) to the writer thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size != _SLOTS * 8:
                    os.ftruncate(fd, _SLOTS * 8)
                self._map = mmap.mmap(fd, _SLOTS * 8)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot keep the recorder's counts in {path}: {exc}", path=str(path)) from None
        self._slots: memoryview | list[int] = memoryview(self._map).cast("Q")
        slots = self._slots
        if slots[0] == MAGIC:
            self.previous_received = slots[_RECEIVED]
            self.previous_lost = max(0, slots[_RECEIVED] - slots[_WRITTEN] - slots[_DISCARDED] - slots[_MALFORMED])
        else:
            self.previous_received = self.previous_lost = 0
        slots[_RECEIVED] = slots[_WRITTEN] = slots[_DISCARDED] = slots[_MALFORMED] = 0
        slots[0] = MAGIC

    @property
    def slots(self) -> memoryview | list[int]:
        """Return the counters themselves (slot 1: received), for a hot path to bump without a call."""
        return self._slots

    @property
    def received(self) -> int:
        return int(self._slots[_RECEIVED])

    @property
    def written(self) -> int:
        return int(self._slots[_WRITTEN])

    @property
    def discarded(self) -> int:
        return int(self._slots[_DISCARDED])

    @property
    def malformed(self) -> int:
        return int(self._slots[_MALFORMED])

    @property
    def pending(self) -> int:
        """Return the ticks received and not yet written (nor discarded or malformed): what a kill -9 now would lose."""
        slots = self._slots
        return int(slots[_RECEIVED] - slots[_WRITTEN] - slots[_DISCARDED] - slots[_MALFORMED])

    def add_written(self, count: int) -> None:
        """Count ticks the store has accepted."""
        self._slots[_WRITTEN] += count

    def add_discarded(self, count: int) -> None:
        """Count ticks dropped on purpose (older than what the store already holds for their key)."""
        self._slots[_DISCARDED] += count

    def add_malformed(self, count: int) -> None:
        """Count payloads received that turned out not to be ticks (skipped)."""
        self._slots[_MALFORMED] += count

    def close(self) -> None:
        """Unmap the file (its counts stay in it, and readable here); safe to call twice."""
        view = self._slots
        if not self._map.closed and isinstance(view, memoryview):
            self._slots = list(view)
            view.release()
            self._map.close()
