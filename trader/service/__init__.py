"""Service runtime: lifecycle states, the service base class and its entry point."""
