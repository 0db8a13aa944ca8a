"""shards/FORMAT.md lists every key a ShardDB makes its store write, and each key it lists is one the
engine writes. On the ``backend`` of enginekit.py: the in-memory store here, a real Redis in
tests/integration/test_engine_on_redis.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from shardmon.model.errors import ShardDataLostError
from tests.unit.shards.enginekit import PREFIX, D, H, batch

ROOT = Path(__file__).resolve().parents[3]
T0 = 1_796_400_000_000


def format_md_keys() -> dict[str, re.Pattern]:
    """The keys of FORMAT.md's table (``P wal``, ``P block:<id>:chunks``, ...) as patterns of key names."""
    text = (ROOT / "shards" / "FORMAT.md").read_text()
    table = text.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `P ([^`]+)` \|", table, re.M)
    return {n: re.compile(re.escape(PREFIX) + re.sub(r"<[a-z_]+>", "[^:]+", n) + "$") for n in names}


def test_format_md_lists_every_key_the_engine_writes_and_no_other(backend):
    async def main():
        db = await backend.open(clock=lambda: T0 + 4 * H, retention_time_ms=100 * D)
        for k in range(4 * 60):
            await db.write(f"w-{k}", batch(3, np.array([T0 + k * 60_000], np.int64)))
        await db.record_metadata([("m", "gauge", "A gauge.", "")])
        assert await db.cut_blocks() == 1
        keys = backend.keys()
        backend.flushall()
        with pytest.raises(ShardDataLostError):
            await db.write("lost", batch(3, np.array([T0 + 4 * H], np.int64)))
        return keys | backend.keys()

    keys = asyncio.run(main())
    listed = format_md_keys()
    assert len(listed) >= 9
    unlisted = sorted(k for k in keys if not any(p.match(k) for p in listed.values()))
    assert not unlisted, f"keys missing from FORMAT.md's table: {unlisted}"
    unused = sorted(n for n, p in listed.items() if not any(p.match(k) for k in keys))
    assert not unused, f"FORMAT.md lists keys the engine does not write: {unused}"
