"""file_sd_configs: JSON and YAML files, added, changed, removed; a malformed file keeps its groups."""

import asyncio
import json
import os

import pytest
from prometheus_client import REGISTRY

from shardmon.ingest.discovery import TargetGroup
from shardmon.ingest.discovery.file import FileDiscoverer, read_file
from shardmon.model.sd_config import FileSDConfig


def _errors() -> float:
    return REGISTRY.get_sample_value("shardmon_sd_file_read_errors_total") or 0.0


def _write(path, text):
    # A new mtime even on file systems with coarse timestamps.
    path.write_text(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _disc(tmp_path, *patterns):
    return FileDiscoverer(FileSDConfig(files=[str(tmp_path / p) for p in patterns]), poll_interval=0.01)


def test_json_file_groups(tmp_path):
    f = tmp_path / "web.json"
    f.write_text(json.dumps([
        {"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod", "team": "web"}},
        {"targets": ["10.0.0.3:9100"]},
    ]))
    assert _disc(tmp_path, "*.json").refresh() == [
        TargetGroup(f"{f}:0", [{"__address__": "10.0.0.1:9100"}, {"__address__": "10.0.0.2:9100"}],
                    {"env": "prod", "team": "web", "__meta_filepath": str(f)}),
        TargetGroup(f"{f}:1", [{"__address__": "10.0.0.3:9100"}], {"__meta_filepath": str(f)}),
    ]


def test_yaml_file_scalars_become_text(tmp_path):
    f = tmp_path / "db.yml"
    f.write_text("- targets: ['db:5432']\n  labels: {port: 5432, primary: true, ratio: 0.5}\n")
    (g,) = read_file(str(f))
    assert g.labels == {"port": "5432", "primary": "true", "ratio": "0.5", "__meta_filepath": str(f)}
    f2 = tmp_path / "empty.yaml"
    f2.write_text("")
    assert read_file(str(f2)) == []


@pytest.mark.parametrize("name,text,error", [
    ("bad.json", "[{\"targets\": [\"a:1\"]", "not valid JSON"),
    ("bad.json", "[{\"targets\": [1]}]", "expected a string"),
    ("bad.json", "[null]", "nil target group"),
    ("bad.json", "{\"targets\": []}", "expected a list"),
    ("bad.json", "[{\"targets\": [\"a:1\"], \"labels\": {\"bad-name\": \"x\"}}]", "not a valid label name"),
    ("bad.yml", "- targets: [a:1]\n  lables: {a: b}\n", "field 'lables' not found"),
    ("bad.yml", "- targets: [a:1\n", "not valid YAML"),
])
def test_malformed_files_are_errors(tmp_path, name, text, error):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ValueError, match=error):
        read_file(str(f))


def test_change_shrink_remove(tmp_path):
    d = _disc(tmp_path, "*.json")
    a = tmp_path / "a.json"
    a.write_text(json.dumps([{"targets": ["x:1"]}, {"targets": ["y:1"]}]))
    assert [g.source for g in d.refresh()] == [f"{a}:0", f"{a}:1"]
    # Changed: one group less; the second one is removed with an empty group.
    a.write_text(json.dumps([{"targets": ["z:1"]}]))
    assert d.refresh() == [
        TargetGroup(f"{a}:0", [{"__address__": "z:1"}], {"__meta_filepath": str(a)}),
        TargetGroup(f"{a}:1", [], {}),
    ]
    # A new file matching the pattern is picked up.
    b = tmp_path / "b.json"
    b.write_text(json.dumps([{"targets": ["w:1"]}]))
    assert [g.source for g in d.refresh()] == [f"{a}:0", f"{b}:0"]
    # Removed: its groups go.
    a.unlink()
    assert d.refresh() == [
        TargetGroup(f"{b}:0", [{"__address__": "w:1"}], {"__meta_filepath": str(b)}),
        TargetGroup(f"{a}:0", [], {}),
    ]


def test_malformed_file_keeps_its_previous_groups(tmp_path):
    d = _disc(tmp_path, "*.yaml")
    f = tmp_path / "t.yaml"
    f.write_text("- targets: [a:1, b:1]\n- targets: [c:1]\n")
    assert len(d.refresh()) == 2
    before = _errors()
    f.write_text("- targets: [a:1\n")  # half written
    assert d.refresh() == []  # nothing sent: the old groups stay, none is removed
    assert _errors() == before + 1
    f.write_text("- targets: [d:1]\n")  # fixed, with one group less
    assert d.refresh() == [
        TargetGroup(f"{f}:0", [{"__address__": "d:1"}], {"__meta_filepath": str(f)}),
        TargetGroup(f"{f}:1", [], {}),
    ]


def test_run_picks_up_changes_by_polling(tmp_path):
    f = tmp_path / "t.json"

    async def main():
        sent = []
        d = _disc(tmp_path, "*.json")
        task = asyncio.create_task(d.run(sent.append))

        async def until(pred):
            for _ in range(300):
                if pred():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"timed out; sent {sent}")

        await until(lambda: len(sent) == 1)
        assert sent[0] == []  # no file yet
        _write(f, json.dumps([{"targets": ["a:1"]}]))
        await until(lambda: len(sent) == 2)
        assert [g.targets for g in sent[1]] == [[{"__address__": "a:1"}]]
        _write(f, json.dumps([{"targets": ["b:1"]}]))
        await until(lambda: len(sent) == 3)
        assert [g.targets for g in sent[2]] == [[{"__address__": "b:1"}]]
        await asyncio.sleep(0.05)
        assert len(sent) == 3  # nothing changed: nothing re-read
        f.unlink()
        await until(lambda: len(sent) == 4)
        assert sent[3] == [TargetGroup(f"{f}:0", [], {})]
        task.cancel()

    asyncio.run(main())


def test_refresh_interval_rereads_unchanged_files(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"targets": ["a:1"]}]))

    async def main():
        sent = []
        d = FileDiscoverer(FileSDConfig(files=[str(tmp_path / "*.json")], refresh_interval="50ms"), poll_interval=0.01)
        task = asyncio.create_task(d.run(sent.append))
        await asyncio.sleep(0.3)
        task.cancel()
        return sent

    sent = asyncio.run(main())
    assert len(sent) >= 3 and all(s == sent[0] for s in sent)
