"""The bus proxy: XSUB (publishers connect) <-> XPUB (subscribers connect), run by libzmq.

Frames are forwarded by ``zmq.proxy_steerable`` in C on a thread of its own, so
the proxy adds one hop but no Python work per message. Subscriptions travel
upstream, so publishers filter at the source. A peer that sends a frame over
``max_frame_bytes`` is disconnected by libzmq (ZMQ_MAXMSGSIZE); decoding, and
dropping what does not decode, is the subscribers' job. With ``curve`` keys
both sides are CURVE servers that admit only the allowed client keys (a
publisher or subscriber refused there neither sends nor receives anything);
without, both endpoints must be on loopback (:mod:`trader.messaging.loopback`).
"""

from __future__ import annotations

import logging
import threading

import zmq

from trader.messaging.curve import ServerKeys, release_server, secure_server
from trader.messaging.loopback import require_protected

log = logging.getLogger(__name__)

HWM = 200_000
MAX_SUBSCRIPTION = 1024  # bytes of a subscription message: a flag byte and a topic prefix (topics are short)


class BusProxy:
    """Bind the two sides of the bus and forward between them until ``stop()``."""

    def __init__(
        self,
        pub_endpoint: str,
        sub_endpoint: str,
        *,
        max_frame_bytes: int = 8 * 1024 * 1024,
        context: zmq.Context | None = None,
        curve: ServerKeys | None = None,
    ) -> None:
        require_protected(pub_endpoint, "bus proxy binding (publishers' side)", protected=curve is not None)
        require_protected(sub_endpoint, "bus proxy binding (subscribers' side)", protected=curve is not None)
        self._ctx = context or zmq.Context.instance()
        self._curve = curve
        self._domains: list[str] = []
        self._bind = (pub_endpoint, sub_endpoint)
        self._max_frame = max_frame_bytes
        self._thread: threading.Thread | None = None
        self._control_endpoint = f"inproc://bus-control-{id(self):x}"
        self._control: zmq.Socket | None = None
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint

    def start(self) -> None:
        """Bind both sides and start forwarding; port 0 binds ephemeral ports."""
        if self._thread is not None:
            return
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        control = self._ctx.socket(zmq.PAIR)
        for sock in (xsub, xpub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, HWM)
            sock.setsockopt(zmq.SNDHWM, HWM)
        xsub.setsockopt(zmq.MAXMSGSIZE, self._max_frame)
        # A subscription is a message too: libzmq keeps each in a trie with a node per byte, so one
        # long subscription costs the bus memory without bound (and a 300 KB one crashed it on teardown).
        xpub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION)
        if self._curve is not None:
            self._domains = [secure_server(sock, self._curve) for sock in (xsub, xpub)]
        try:
            xsub.bind(self._bind[0])
            xpub.bind(self._bind[1])
        except zmq.ZMQError:
            xsub.close()
            xpub.close()
            control.close()
            self._release()
            raise
        self.pub_endpoint = xsub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sub_endpoint = xpub.getsockopt_string(zmq.LAST_ENDPOINT)
        control.bind(self._control_endpoint)
        self._control = control
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(xsub, xpub, ready), name="bus-proxy", daemon=True)
        self._thread.start()
        ready.wait(5)
        log.info("bus proxy: publishers -> %s, subscribers -> %s", self.pub_endpoint, self.sub_endpoint)

    def _run(self, xsub: zmq.Socket, xpub: zmq.Socket, ready: threading.Event) -> None:
        steer = self._ctx.socket(zmq.PAIR)
        steer.connect(self._control_endpoint)
        ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, steer)
        except zmq.ContextTerminated:
            pass
        except zmq.ZMQError as exc:
            log.error("bus proxy stopped: %s", exc)
        finally:
            for sock in (xsub, xpub, steer):
                sock.close(linger=0)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop forwarding and close the sockets; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None or self._control is None:
            return
        self._control.send(b"TERMINATE")
        thread.join(timeout)
        self._control.close(linger=0)
        self._control = None
        self._release()

    def _release(self) -> None:
        domains, self._domains = self._domains, []
        for domain in domains:
            release_server(self._ctx, domain)
