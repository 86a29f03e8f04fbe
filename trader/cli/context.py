"""The state every CLI command shares: global options, the settings (loaded once) and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console

from pycron.client import PycronClient
from trader.config import Settings, load_settings


@dataclass
class CliContext:
    """Global options and lazily loaded settings; reach it with ``@pass_cli``."""

    profile: str | None = None
    json: bool = False
    console: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    _settings: dict[str | None, Settings] = field(default_factory=dict)

    def settings(self, profile: str | None = None) -> Settings:
        """Return the settings of ``profile`` (default: the global ``--profile``), loading them once."""
        name = profile or self.profile
        if name not in self._settings:
            self._settings[name] = load_settings(name)
        return self._settings[name]

    def client(self, profile: str | None = None, *, timeout: float = 5.0) -> PycronClient:
        """Return a control API client for the pycron of these settings."""
        return PycronClient.from_settings(self.settings(profile), timeout=timeout)

    def emit_json(self, data: Any) -> None:
        """Print ``data`` as JSON on stdout (machine-readable output for ``--json``)."""
        click.echo(json.dumps(data, indent=2, default=str))


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
