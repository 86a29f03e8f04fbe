"""Which strategy plugin modules are loaded: a test checks it unloads its own (other files' may still be loaded)."""

from __future__ import annotations

import sys


def plugin_modules() -> set[str]:
    """Return the names of the strategy plugin modules loaded in this process."""
    return {name for name in sys.modules if name.startswith("_trader_plugin_")}
