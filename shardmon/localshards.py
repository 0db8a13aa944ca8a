"""A few shards on this machine, each with its own redis-server, on free loopback ports: for
``shardmon promqltest --shards N`` (the same processes ``shardmon up`` starts)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from shardmon.launcher import LocalCluster
from shardmon.model.config import Config, load_config
from shardmon.procs import Child, free_port


class LocalShards:
    """``n`` shard servers with the admin API on (``web.enable_admin_api``: Reset empties them, Flush
    cuts blocks), and their Redis, all on loopback."""

    def __init__(self, n: int, folder: str | Path | None = None, block_duration: str = "2h") -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="shardmon-shards-"))
        raw = {
            "web": {"enable_admin_api": True},
            "shards": {
                "block_duration": block_duration,
                "nodes": [{"id": i, "address": f"127.0.0.1:{free_port()}",
                           "redis_url": f"redis://127.0.0.1:{free_port()}/0"} for i in range(n)],
            },
            "local": {"data_dir": str(self.folder), "start_redis": True, "demo_targets": []},
        }
        self.config_path = self.folder / "shards.yml"
        self.config_path.write_text(yaml.safe_dump(raw))
        self.config: Config = load_config(self.config_path)
        cluster = LocalCluster(self.config, str(self.config_path))
        self.children: list[Child] = cluster.redis + cluster.shards

    def start(self) -> LocalShards:
        try:
            for child in self.children:
                child.up(60)
        except Exception:
            self.stop()
            raise
        return self

    def clients(self):
        from shardmon.shards.client import ShardClient, ShardConnection

        return [ShardClient(n.id, n.address, ShardConnection.of(self.config)) for n in self.config.shards.nodes]

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout_s=10)

    def __enter__(self) -> LocalShards:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
