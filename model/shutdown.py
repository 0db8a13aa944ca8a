"""How a service process waits for its end: an asyncio event, set by SIGTERM or SIGINT by default."""

from __future__ import annotations

import asyncio
import signal


async def wait_until_stopped(stop: asyncio.Event | None = None) -> None:
    """Wait for ``stop``; without one, for SIGTERM or SIGINT (how ``shardmon up`` and containers stop us)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
