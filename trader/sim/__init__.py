"""tws-sim: a simulated TWS that speaks the real TWS API wire protocol.

Layers, each usable on its own (see docs/tws-protocol.md):

- :mod:`trader.sim.wire` - framing and field encoding (pure);
- :mod:`trader.sim.msgids` - message ids, error codes and protocol version gates;
- :mod:`trader.sim.client_requests` and :mod:`trader.sim.place_order` - incoming request parsers (pure);
- :mod:`trader.sim.encoders` and :mod:`trader.sim.order_wire` - outgoing messages (pure);
- :mod:`trader.sim.catalogue`, :mod:`trader.sim.market_state`, :mod:`trader.sim.market`,
  :mod:`trader.sim.history`, :mod:`trader.sim.orders`, :mod:`trader.sim.engine`, :mod:`trader.sim.order_rules`,
  :mod:`trader.sim.account` - the simulated world's parts (pure, clock injected);
- :mod:`trader.sim.session` (one connection, held to :mod:`trader.sim.limits`),
  :mod:`trader.sim.handlers` (the answers), :mod:`trader.sim.world` (the world a
  session runs against, no network) and :mod:`trader.sim.server` (the listener).
"""
