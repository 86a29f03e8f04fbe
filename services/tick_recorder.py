"""tick_recorder: records every ``tick.*`` message on the bus into the market store, in batches.

The work is trader.data.recorder's :class:`TickRecorder`: the loop reads the
bus (``recorder.topics``, default ``tick``) into an open batch (payloads
as received), one writer thread decodes and appends each key's ticks to the store's ``ticks`` library when the
batch holds half of ``recorder.batch_rows`` ticks or ``recorder.batch_seconds``
after its first; no more than ``batch_rows`` are ever held unstored. On SIGTERM it stops reading, writes everything received
and exits 0. Its counts of ticks received, written, discarded and malformed live in
``<run_dir>/tick_recorder.counts`` (trader.data.recorder_counts), so a start
after a kill -9 logs, at WARNING, how many ticks that run received and never
wrote.

Heartbeat ``heartbeat.tick_recorder`` and RPC ``status`` (when
``services.tick_recorder.rpc_port`` is set) carry the counts, the batch in
hand, ``behind`` (the writer lags: ``batch_rows`` ticks are held unstored,
so the bus is not read and waits in ZeroMQ's queue) and
the store's last error; the service is DEGRADED while either holds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from trader.config import Settings
from trader.data.factory import open_store
from trader.data.recorder import TickRecorder
from trader.data.recorder_counts import RecorderCounts
from trader.service.base import Service, main

log = logging.getLogger(__name__)

COUNTS_FILE = "tick_recorder.counts"
WATCH_INTERVAL = 1.0  # seconds between looks at the writer (DEGRADED / RUNNING)


class TickRecorderService(Service):
    """Run a :class:`TickRecorder` on the bus and the configured store; see the module docstring."""

    name = "tick_recorder"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.recorder: TickRecorder | None = None
        self._watch: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        opts = self.settings.recorder
        counts = RecorderCounts(self.settings.path(self.settings.storage.run_dir) / COUNTS_FILE)
        if counts.previous_lost:
            log.warning("the previous run lost %d ticks of the %d it received: killed before they were written",
                        counts.previous_lost, counts.previous_received)
        elif counts.previous_received:
            log.info("the previous run wrote all %d ticks it received", counts.previous_received)
        store = await asyncio.to_thread(open_store, self.settings)
        self.recorder = TickRecorder(store, counts, batch_rows=opts.batch_rows, batch_seconds=opts.batch_seconds)
        self.recorder.listen(self.settings.bus.sub_endpoint, opts.topics, curve=self.curve.client)
        self._watch = asyncio.get_running_loop().create_task(self._watch_writer(), name="writer-watch")

    async def _watch_writer(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            recorder = self.recorder
            if recorder is None:
                continue
            if recorder.last_error:
                self.set_degraded(f"the store refuses writes: {recorder.last_error}")
            elif recorder.behind:
                self.set_degraded("the store writer is behind the bus")
            else:
                self.set_running("recording")

    async def on_stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.recorder is not None:
            await self.recorder.close()

    def status_info(self) -> dict[str, Any]:
        return self.recorder.status() if self.recorder is not None else {}


if __name__ == "__main__":
    sys.exit(main(TickRecorderService))
