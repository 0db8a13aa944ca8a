"""The shard subcommand's Redis options: recovery flags, ``--check`` without the password, and what
``shardmon up`` starts for a shard whose Redis has a password, TLS or no AOF."""

from __future__ import annotations

import stat

import pytest

from shardmon.cli import main
from shardmon.launcher import LocalCluster
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError

SECRET = "hunter2-Secret"


def _config(tmp_path, node: str, shards: str = "") -> str:
    p = tmp_path / "c.yml"
    p.write_text(f"shards:\n{shards}  nodes:\n  - {{id: 0, address: '127.0.0.1:9301', {node}}}\n"
                 f"  - {{id: 1, address: '127.0.0.1:9302', redis_url: 'redis://127.0.0.1:6402/0'}}\n")
    return str(p)


def test_check_never_prints_the_redis_password(tmp_path, capsys):
    path = _config(tmp_path, f"redis_url: 'redis://app:{SECRET}@127.0.0.1:6401/0'")
    assert main(["shard", "--id", "0", "--config", path, "--check"]) == 0
    out = capsys.readouterr().out
    assert "Redis redis://app@127.0.0.1:6401/0, password set" in out and SECRET not in out
    path = _config(tmp_path, "redis_url: 'rediss://127.0.0.1:6401/0', redis_password_file: /run/pw, "
                             "redis_tls_config: {ca_file: /ca.pem}")
    assert main(["shard", "--id", "0", "--config", path, "--check"]) == 0
    assert "Redis rediss://127.0.0.1:6401/0, password from /run/pw, TLS" in capsys.readouterr().out


def test_a_bad_redis_url_is_named_without_its_password(tmp_path, capsys):
    path = _config(tmp_path, f"redis_url: 'http://:{SECRET}@127.0.0.1:6401/0'")
    assert main(["shard", "--id", "0", "--config", path, "--check"]) == 2
    err = capsys.readouterr().err
    assert "shards.nodes[0].redis_url: not a redis:// URL" in err and SECRET not in err


@pytest.mark.parametrize("flags, shards, error", [
    (["--accept-data-loss", "--rebuild-from-replicas"], "", "give --accept-data-loss or --rebuild-from-replicas"),
    (["--rebuild-from-replicas"], "", "shards.replication_factor: 1, so no other shard holds a copy"),
])
def test_recovery_flags_are_checked(tmp_path, capsys, flags, shards, error):
    path = _config(tmp_path, "redis_url: 'redis://127.0.0.1:6401/0'", shards)
    assert main(["shard", "--id", "0", *flags, "--config", path, "--check"]) == 2
    assert error in capsys.readouterr().err


def test_rebuild_from_replicas_checks_with_replication(tmp_path, capsys):
    path = _config(tmp_path, "redis_url: 'redis://127.0.0.1:6401/0'", "  replication_factor: 2\n")
    assert main(["shard", "--id", "0", "--rebuild-from-replicas", "--config", path, "--check"]) == 0


def _cluster(tmp_path, text: str) -> LocalCluster:
    cfg = parse_config(text.replace("DATA", str(tmp_path / "data")))
    return LocalCluster(cfg, None)


def test_shardmon_up_gives_a_password_to_its_redis_in_a_private_file_not_on_the_command_line(tmp_path):
    c = _cluster(tmp_path, f"""
shards:
  nodes: [{{id: 0, address: '127.0.0.1:9301', redis_url: 'redis://:{SECRET}@127.0.0.1:6401/0'}}]
local: {{data_dir: DATA}}
""")
    argv = c.redis[0].argv
    assert SECRET not in " ".join(argv)
    conf = tmp_path / "data" / "redis-0" / "redis-auth.conf"
    assert argv[1] == str(conf) and conf.read_text() == f'requirepass "{SECRET}"\n'
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert argv[argv.index("--appendonly") + 1] == "yes"


def test_shardmon_up_starts_redis_without_aof_for_wal_appendfsync_off_and_refuses_to_start_a_tls_one(tmp_path):
    c = _cluster(tmp_path, """
shards:
  wal_appendfsync: "off"
  nodes: [{id: 0, address: '127.0.0.1:9301', redis_url: 'redis://127.0.0.1:6401/0'}]
local: {data_dir: DATA}
""")
    argv = c.redis[0].argv
    assert argv[argv.index("--appendonly") + 1] == "no" and "--appendfsync" not in argv
    with pytest.raises(ConfigError, match="does not start Redis with TLS"):
        _cluster(tmp_path, """
shards:
  nodes: [{id: 0, address: '127.0.0.1:9301', redis_url: 'rediss://127.0.0.1:6401/0'}]
local: {data_dir: DATA}
""")
