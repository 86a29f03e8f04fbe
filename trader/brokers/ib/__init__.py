"""Interactive Brokers adapter, built on ib_async."""
