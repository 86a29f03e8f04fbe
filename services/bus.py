"""The bus process: the XSUB/XPUB proxy every service publishes to and subscribes from."""

from __future__ import annotations

import sys
from typing import Any

from trader.messaging.curve import CurveKeys
from trader.messaging.proxy import BusProxy
from trader.service.base import Service, main


class BusService(Service):
    """Run the bus proxy; its own heartbeat travels through it (``heartbeat.bus``)."""

    name = "bus"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.proxy: BusProxy | None = None

    async def on_start(self) -> None:
        bus = self.settings.bus
        keys = CurveKeys.from_settings(self.settings, need_server=True)
        self.proxy = BusProxy(bus.pub_endpoint, bus.sub_endpoint, max_frame_bytes=bus.max_frame_bytes,
                              curve=keys.server)
        self.proxy.start()

    async def on_stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()

    def status_info(self) -> dict[str, Any]:
        bus = self.settings.bus
        return {"pub_endpoint": bus.pub_endpoint, "sub_endpoint": bus.sub_endpoint}


if __name__ == "__main__":
    sys.exit(main(BusService))
