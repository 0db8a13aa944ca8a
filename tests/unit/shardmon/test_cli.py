"""The shardmon command: the embedded default and configuration checks."""

import subprocess
import sys


def test_the_embedded_default_config_loads():
    from shardmon.cli_common import load
    from shardmon.ingest.target import targets_from_config

    c = load(None)
    jobs = [t.job for t in targets_from_config(c)]
    assert jobs.count("demo") == len(c.local.demo_targets) == 3
    assert jobs.count("pushgateway") == 1 and c.receiver is not None
    assert len(c.shards.nodes) == 2


def test_check_config_reports_a_bad_field_with_its_path(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("scrape_configs: [{job_name: a, scrape_intervall: 5s}]\n")
    proc = subprocess.run([sys.executable, "-m", "shardmon", "check-config", "--config", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "scrape_configs[0].scrape_intervall: field not supported" in proc.stderr


def test_every_service_checks_the_default_config(capsys):
    from shardmon.cli import main

    for argv in (["shard", "--id", "1"], ["querier"], ["ingest"], ["receiver"], ["demo-targets"]):
        assert main([*argv, "--check"]) == 0, (argv, capsys.readouterr().err)
        assert ": OK: " in capsys.readouterr().out
