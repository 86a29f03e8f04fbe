"""Service entry points: one module per process, each run as ``python -m services.<name>``."""
