"""Strategy switches: the enable/disable choices made over RPC, kept in Redis so that they outlive a restart.

``strategy enable``/``disable`` saves the choice in a Redis hash
(``strategies.switches_key``, a trader.saved_hash.SavedHash: strategy ->
"1" or "0"); at its start the strategy service reads them back, and a
strategy never switched follows its config's ``enabled:``. Redis unreadable
at the start: each config's ``enabled:`` decides (logged). A choice that
cannot be saved is logged: the strategy is switched all the same, and a
restart follows its config.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trader.saved_hash import SavedHash

log = logging.getLogger(__name__)

__all__ = ["Switches"]


class Switches:
    """The enable/disable choices in a Redis hash; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self.hash = SavedHash(redis, key)

    async def load(self) -> dict[str, bool]:
        """Return the enable/disable choices made over RPC, kept in Redis across restarts."""
        try:
            saved = await self.hash.load()
        except RedisError as exc:
            log.warning("cannot read the saved strategy switches (%s): each config's enabled: decides", exc)
            return {}
        return {name: value == "1" for name, value in saved.items()}

    async def save(self, name: str, enabled: bool) -> None:
        """Remember that ``name`` is enabled (or disabled); a failure is logged."""
        await self.hash.set(name, "1" if enabled else "0", lost="a restart will follow its config")
