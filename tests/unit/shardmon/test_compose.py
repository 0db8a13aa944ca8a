"""compose.yaml, the reference deployment: complete, consistent with deploy/shardmon.yml, and every
Shardmon service's command passes its own --check against that file.

(`docker-compose config` validates the file in .ci/run; these tests need no Docker.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "compose.yaml"
CONFIG = ROOT / "deploy" / "shardmon.yml"
MOUNTED = "/etc/shardmon/shardmon.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment: the defaults."""
    return _VAR.sub(lambda m: m.group(2) or "", text)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def config():
    from shardmon.model.config import load_config

    return load_config(CONFIG)


def shardmon_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("shardmon:")}


def test_the_cluster_has_every_service_the_issue_asks_for(compose):
    services = compose["services"]
    for name in ("redis-0", "redis-1", "redis-2", "shard-0", "shard-1", "shard-2", "ray-head", "ray-worker",
                 "ingest", "querier", "demo", "prometheus", "alertmanager"):
        assert name in services, name
    # Prometheus and Alertmanager are optional: only with --profile monitoring.
    assert services["prometheus"]["profiles"] == ["monitoring"] == services["alertmanager"]["profiles"]
    # Ray workers scale: no fixed name, no host port.
    worker = services["ray-worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_every_shardmon_service_runs_one_image_with_the_mounted_configuration(compose):
    services = shardmon_services(compose)
    assert set(services) == {"shard-0", "shard-1", "shard-2", "ray-head", "ray-worker", "demo", "ingest", "querier",
                             "receiver", "ruler"}
    for name, s in services.items():
        assert s["image"] == "shardmon:${SHARDMON_TAG:-latest}", name
        # Built from the repository on the official Python image unless PYTHON_IMAGE names another
        # (deploy/offline-images.sh's, built from Debian packages).
        assert s["build"] == {"context": ".", "args": {"PYTHON_IMAGE": "${PYTHON_IMAGE:-python:3.11-slim}"}}, name
        assert f"./deploy/shardmon.yml:{MOUNTED}:ro" in s["volumes"], name
        # The rule files at the same path on every node (the rulers read them where they run).
        assert "./deploy/rules.yml:/etc/shardmon/rules.yml:ro" in s["volumes"], name
        cmd = s["command"]
        assert isinstance(cmd, list) and cmd[cmd.index("--config") + 1] == MOUNTED, name


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    for name, s in services.items():
        test = s.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        deps = s.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, cond in deps.items():
            assert dep in services, (name, dep)
            assert cond == {"condition": "service_healthy"}, (name, dep, cond)
    assert set(services["ingest"]["depends_on"]) >= {"ray-head", "ray-worker", "shard-0", "shard-1", "shard-2"}
    assert set(services["querier"]["depends_on"]) >= {"shard-0", "shard-1", "shard-2"}


def test_each_shard_has_its_own_official_redis_with_aof_on_a_named_volume(compose, config):
    services, volumes = compose["services"], compose["volumes"]
    redis_hosts = set()
    for node in config.shards.nodes:
        shard = services[f"shard-{node.id}"]
        assert shard["command"][:3] == ["shard", "--id", str(node.id)]
        host = re.match(r"redis://([^:/]+)", node.redis_url).group(1)
        redis_hosts.add(host)
        r = services[host]
        # The official image unless REDIS_IMAGE names another (deploy/offline-images.sh's).
        assert re.fullmatch(r"\$\{REDIS_IMAGE:-redis:\d+(\.\d+)*(-alpine)?\}", r["image"]), r["image"]
        cmd = r["command"]
        assert cmd[0] == "redis-server" and cmd[cmd.index("--appendonly") + 1] == "yes"
        named = [v.split(":")[0] for v in r["volumes"] if v.endswith(":/data")]
        assert len(named) == 1 and named[0] in volumes, r["volumes"]
        assert host in shard["depends_on"]
    assert len(redis_hosts) == len(config.shards.nodes) == 3
    redis_volumes = [v for h in redis_hosts for v in compose["services"][h]["volumes"]]
    assert len(set(redis_volumes)) == len(redis_volumes), "two Redis servers share a volume"


def test_ports_are_published_from_variables_with_defaults(compose, config):
    querier = compose["services"]["querier"]
    published = {int(p.rsplit(":", 1)[1]): p for p in querier["ports"]}
    http = int(config.querier.http_address.rsplit(":", 1)[1])
    grpc = int(config.querier.grpc_address.rsplit(":", 1)[1])
    assert set(published) == {http, grpc}
    for name, s in compose["services"].items():
        for p in s.get("ports", []):
            assert re.fullmatch(r"\$\{[A-Z_]+:-\d+\}:\d+", p), f"{name}: publish {p!r} through a variable with a default"


def test_ingest_and_the_workers_reach_the_ray_head_by_address(compose, config):
    s = compose["services"]
    head = s["ray-head"]["command"]
    gcs_port, client_port = head[head.index("--port") + 1], head[head.index("--client-port") + 1]
    assert head[head.index("--num-cpus") + 1] == "0", "scrapers belong on the workers, not on the head"
    worker = s["ray-worker"]["command"]
    assert worker[worker.index("--address") + 1] == f"ray-head:{gcs_port}"
    ingest = s["ingest"]["command"]
    address = ingest[ingest.index("--ray-address") + 1]
    assert address.startswith("${SHARDMON_RAY_ADDRESS:-")
    assert interpolate(address) == f"ray://ray-head:{client_port}" == config.ingest.ray_address


def test_no_secrets_are_written_in_the_file():
    text = COMPOSE.read_text()
    for m in re.finditer(r"(?im)^\s*-?\s*\"?([A-Z0-9_]*(PASSWORD|SECRET|TOKEN|API_KEY|PASSWD)[A-Z0-9_]*)\"?\s*[:=]\s*(.*)$",
                         text):
        assert m.group(3).strip().strip("\"'").startswith("${"), f"{m.group(1)} is written in compose.yaml"
    assert not re.search(r"(?i)--requirepass\s+['\"]?[^$\s]", text)
    assert not re.search(r"(?i)\w+://[^/\s:@]+:[^/\s@$]+@", text), "credentials in a URL"


def test_every_shardmon_command_passes_its_check_against_the_mounted_configuration(compose, capsys):
    from shardmon.cli import main

    for name, s in shardmon_services(compose).items():
        argv = [interpolate(a).replace(MOUNTED, str(CONFIG)) for a in s["command"]]
        if "--" in argv:  # ray-node: `ray start` options follow; --check goes before them.
            argv.insert(argv.index("--"), "--check")
        else:
            argv.append("--check")
        code = main(argv)  # The command's own entry point, in this process (as `shardmon ARGV`).
        out, err = capsys.readouterr()
        assert code == 0, f"{name}: {err}"
        assert out.startswith(f"{CONFIG}: OK: ") and out.count("\n") == 1, (name, out)


def test_the_dockerfile_builds_one_small_non_root_image_from_the_repository():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", text)
    # Both stages on PYTHON_IMAGE, whose default is the official slim image.
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms), froms
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.\d+-slim$", text)
    assert re.search(r"(?m)^RUN .*pip install \$\{PIP_INSTALL_OPTIONS\} \.", text), "installed from the repository"
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and users[-1] not in ("root", "0"), "the image runs as root"
    assert re.search(r'(?m)^ENTRYPOINT \["shardmon"\]', text)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (.ci/run installs it)")
def test_docker_compose_config_accepts_the_file():
    for extra in ([], ["--profile", "monitoring"]):
        proc = subprocess.run(["docker-compose", "-f", str(COMPOSE), *extra, "config"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "ray-worker" in proc.stdout
