"""Fuzzing the config loader with random YAML text, random YAML structures and random changes to the
embedded default config: it returns a Config or raises ConfigError (naming where), nothing else, and
each input is handled within the time budget."""

from __future__ import annotations

import copy
from importlib import resources

import yaml
from hypothesis import given
from hypothesis import strategies as st

from shardmon.model.config import Config, parse_config
from shardmon.model.errors import ConfigError
from tests.unit.fuzzing import fuzz

DEFAULT = yaml.safe_load(resources.files("shardmon").joinpath("default.yml").read_text())

# Field names that exist somewhere in the config, so random structures reach the models' validators.
FIELDS = ["global", "scrape_configs", "shards", "ingest", "querier", "receiver", "local", "job_name",
          "scrape_interval", "scrape_timeout", "static_configs", "targets", "labels", "relabel_configs",
          "metric_relabel_configs", "source_labels", "regex", "action", "replacement", "target_label", "nodes",
          "id", "address", "redis_url", "replication_factor", "http_address", "max_decoded_body_bytes",
          "label_limit", "persistence_interval", "max_push_groups", "external_labels", "basic_auth", "tls_config",
          "file_sd_configs", "files", "honor_labels", "sample_limit", "body_size_limit", "block_duration",
          "retention_time", "retention_size", "lookback_delta", "scrapers", "self_monitoring", "params",
          "scheme", "metrics_path", "kubernetes_sd_configs", "role", "http_sd_configs", "url"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20),
    st.sampled_from(["15s", "0", "1h30m", "-1s", "1e999", "99999999999999999999y", "512MB", "0.5GB", "1TiB", "x",
                     "127.0.0.1:9090", ":", "redis://127.0.0.1:1/0", "(", ".*", "replace", "drop", "hashmod",
                     "NaN", "inf", "\x00", "é", "__name__", "a" * 300]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), inner, max_size=5)),
    max_leaves=30,
)


def load(text: str) -> None:
    try:
        config = parse_config(text)
    except ConfigError as exc:
        assert str(exc).startswith("<config>: ")
        return
    assert isinstance(config, Config)


@fuzz()
@given(st.text(max_size=500))
def test_random_text_gives_a_config_or_a_config_error(text):
    load(text)


YAML_BITS = ["{", "}", "[", "]", ":", ": ", "- ", "\n", "  ", "&a ", "*a", "!!binary ", "!!python/object ", "? ", "|",
             ">", "'", '"', "#", ",", "%YAML 1.1\n", "---\n", "...\n", "global", "scrape_configs", "receiver",
             "job_name", "x", "1", "1e400", "0x1F", "~", "<<: *a", "!!str ", "!!int ", "!!float ", "\t"]


@fuzz()
@given(st.one_of(st.lists(st.sampled_from(YAML_BITS), max_size=80).map("".join),
                 st.integers(1, 3000).map(lambda n: "a: " + "[" * n), st.integers(1, 3000).map(lambda n: "{a: " * n)))
def test_broken_and_deeply_nested_yaml_gives_a_config_error(text):
    load(text)


@fuzz()
@given(st.dictionaries(st.sampled_from(FIELDS), structures, max_size=6))
def test_random_structures_give_a_config_or_a_config_error(raw):
    load(yaml.safe_dump(raw))


@st.composite
def changed_default(draw) -> dict:
    """The default config with one value somewhere replaced by a random structure (or removed)."""
    raw = copy.deepcopy(DEFAULT)
    node, path = raw, []
    while isinstance(node, (dict, list)) and node and (not path or draw(st.booleans())):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = draw(st.sampled_from(keys))
        path.append((node, k))
        node = node[k]
    if not path:
        return raw
    parent, k = path[-1]
    if isinstance(parent, dict) and draw(st.integers(0, 5)) == 0:
        del parent[k]
    else:
        parent[k] = draw(structures)
    return raw


@fuzz()
@given(changed_default())
def test_changes_to_the_default_config_give_a_config_or_a_config_error(raw):
    load(yaml.safe_dump(raw))
