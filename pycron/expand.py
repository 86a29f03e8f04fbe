"""``${...}`` in job fields: values from the trader settings, ``${python}`` and ``${home}``.

``${dotted.key}`` walks the settings (``${redis.port}``, ``${bus.sub_endpoint}``,
``${services.bus.rpc_port}``); a path becomes absolute against the home, a
secret may only go into a job's env (a command line is visible to every
user through ps), and ``$$`` is a literal ``$``. Every failure is a
ConfigError naming the file, the job's field and the key.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from trader.config import Settings
from trader.errors import ConfigError

REFERENCE_RE = re.compile(r"\$\$|\$\{([^}]*)\}")


class Expander:
    """Expand references in job fields against one profile's settings."""

    def __init__(self, settings: Settings, source: str) -> None:
        self.settings = settings
        self.source = source

    def expand(
        self, text: str, where: str, *, secrets_ok: bool = False, strict: bool = True
    ) -> str:
        """Return ``text`` with every reference replaced; ``where`` names the field in errors.

        ``strict=False`` lets an unset value expand to "" (for jobs outside the
        active profile, which must still name only known keys).
        """

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            return self._value(match.group(1).strip(), where, secrets_ok=secrets_ok, strict=strict)

        return REFERENCE_RE.sub(replace, text)

    def _fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def _value(self, key: str, where: str, *, secrets_ok: bool, strict: bool) -> str:
        if key == "python":
            return sys.executable
        if key == "home":
            return str(self.settings.home)
        node = self._lookup(key, where)
        if isinstance(node, SecretStr):
            if not secrets_ok:
                raise self._fail(
                    where, f"${{{key}}} is a secret: pass it in env, never on a command line"
                )
            return node.get_secret_value()
        if node is None:
            if strict:
                raise self._fail(
                    where, f"${{{key}}} is not set in profile {self.settings.profile!r}"
                )
            return ""
        if isinstance(node, (BaseModel, Mapping, list, tuple)):
            raise self._fail(where, f"${{{key}}} is a section, not a value")
        if isinstance(node, Path):
            return str(self.settings.path(node))
        if isinstance(node, bool):
            return "true" if node else "false"
        if isinstance(node, Enum):
            return str(node.value)
        return str(node)

    def _lookup(self, key: str, where: str) -> Any:
        node: Any = self.settings
        parts = key.split(".")
        for i, part in enumerate(parts):
            if node is self.settings.services and part:
                node = self.settings.service(part)  # a service the file does not name has defaults
            elif isinstance(node, BaseModel) and _is_attribute(node, part):
                node = getattr(node, part)
            elif isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                raise self._fail(where, f"unknown key ${{{key}}}")
            if i < len(parts) - 1 and not isinstance(node, (BaseModel, Mapping)):
                raise self._fail(where, f"unknown key ${{{key}}}")
        return node


def _is_attribute(model: BaseModel, name: str) -> bool:
    """Whether ``name`` is a field or a property of the model (never a method or private name)."""
    return name in type(model).model_fields or isinstance(
        getattr(type(model), name, None), property
    )
