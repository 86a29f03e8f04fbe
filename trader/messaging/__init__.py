"""Messaging: the codec, the bus (pub/sub) and RPC."""
