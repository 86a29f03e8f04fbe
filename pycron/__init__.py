"""pycron: the platform's process supervisor (dependency order, restarts, schedules, HTTP control)."""
