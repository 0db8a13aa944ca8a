"""prometheus-adapter's configuration: its published files load (the sample as mended upstream, the
deployment's ConfigMap), the defaults are the deployment's, and bad rules are refused naming the field path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shardmon.model.adapter_config import DEFAULT_RESOURCE_RULES, load_adapter_config, parse_adapter_config
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "prometheus-adapter"


def test_the_published_sample_configuration_loads_once_its_quoting_is_mended():
    cfg = load_adapter_config(FIXTURES / "sample-config-quoted.yaml")
    assert [r.name.matches for r in cfg.rules] == ["^container_(.*)_seconds_total$", "^container_(.*)_total$",
                                                  "^(.*)_total$", ""]
    assert cfg.rules[1].seriesFilters[0].isNot == "^container_.*_seconds_total$"
    assert cfg.rules[2].resources.template == "<<.Resource>>"
    assert cfg.rules[3].name.as_ == "cheesy_goodness"
    assert cfg.rules[3].resources.overrides["brand"].group == "cheese.io"
    assert cfg.externalRules[1].resources.namespaced is False


def test_the_published_sample_as_is_is_refused_where_the_adapter_refuses_it():
    """Upstream issue #697: its double-quoted metricsQuery values hold double quotes (not YAML)."""
    with pytest.raises(ConfigError, match=r"sample-config.yaml: not valid YAML: line \d+, column 70"):
        load_adapter_config(FIXTURES / "sample-config.yaml")


def test_the_deployments_config_map_loads_and_is_the_default():
    cm = yaml.safe_load((FIXTURES / "config-map.yaml").read_text())
    cfg = parse_adapter_config(cm["data"]["config.yaml"], "config-map.yaml")
    rr = cfg.resourceRules
    assert rr is not None and rr.window == 300_000
    assert rr.cpu.containerLabel == "container" and rr.memory.resources.overrides["node"].resource == "node"
    norm = lambda s: " ".join(s.split())  # noqa: E731
    for mine, theirs in ((DEFAULT_RESOURCE_RULES.cpu, rr.cpu), (DEFAULT_RESOURCE_RULES.memory, rr.memory)):
        assert norm(mine.containerQuery) == norm(theirs.containerQuery)
        assert norm(mine.nodeQuery) == norm(theirs.nodeQuery)
    assert DEFAULT_RESOURCE_RULES.window == rr.window


def test_the_section_falls_back_to_config_file_then_to_the_defaults(tmp_path):
    (tmp_path / "adapter.yaml").write_text((FIXTURES / "sample-config-quoted.yaml").read_text())
    (tmp_path / "shardmon.yml").write_text(
        "kubernetes_metrics:\n  config_file: adapter.yaml\n  externalRules: []\n")
    from shardmon.model.config import load_config
    km = load_config(tmp_path / "shardmon.yml").kubernetes_metrics
    assert km.config_file == str(tmp_path / "adapter.yaml")
    ad = km.adapter_config()
    assert len(ad.rules) == 4 and ad.externalRules == [] and ad.resourceRules == DEFAULT_RESOURCE_RULES


@pytest.mark.parametrize(("rule", "message"), [
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "name": {"matches": "(a)(b)"}},
     r"rules\[0\]\.name: must specify an 'as' value"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "seriesFilters": [{"is": "a", "isNot": "b"}]},
     r"rules\[0\]\.seriesFilters\[0\]: cannot have both an `is`"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "seriesFilters": [{}]},
     r"rules\[0\]\.seriesFilters\[0\]: must have either an `is` or `isNot`"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "seriesFilters": [{"is": "a("}]},
     r"rules\[0\]\.seriesFilters\[0\]: unable to compile series filter 'a\('"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>)"},
     r"rules\[0\]\.metricsQuery: unable to parse metrics-query template"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "resources": {"template": "kube_<<.Group>>"}},
     r"rules\[0\]\.resources\.template: .*must include at least `<<\.Resource>>`"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "resources": {"overrides": {"pod": {}}}},
     r"rules\[0\]\.resources\.overrides\.pod\.resource: Field required"),
    ({"seriesQuery": "x", "metricsQuery": "sum(<<.Series>>)", "seriesFilter": []},
     r"rules\[0\]\.seriesFilter: field not supported"),
    ({"metricsQuery": "sum(<<.Series>>)"}, r"rules\[0\]\.seriesQuery: Field required"),
])
def test_a_bad_rule_is_refused_naming_its_field_path(rule, message):
    with pytest.raises(ConfigError, match=r"kubernetes_metrics\." + message):
        parse_config(yaml.safe_dump({"kubernetes_metrics": {"rules": [rule]}}))


def test_a_bad_config_file_names_the_section_the_file_and_the_path(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("resourceRules:\n  cpu: {containerQuery: x, nodeQuery: y}\n  memory: {containerQuery: x}\n")
    km = parse_config(f"kubernetes_metrics:\n  config_file: {bad}\n").kubernetes_metrics
    with pytest.raises(ConfigError, match=r"kubernetes_metrics.config_file: .*a.yaml: resourceRules.memory.nodeQuery"):
        km.adapter_config()
