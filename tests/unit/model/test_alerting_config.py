"""The ``alerting`` section: Prometheus 2.42's fields and defaults, its errors naming the field path."""

from __future__ import annotations

import pytest

from shardmon.model.alerting_config import alerts_path
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


def test_defaults_are_prometheus_s():
    c = parse_config("alerting: {alertmanagers: [{static_configs: [{targets: ['am:9093']}]}]}")
    am = c.alerting.alertmanagers[0]
    assert (am.scheme, am.path_prefix, am.timeout, am.api_version) == ("http", "", 10_000, "v2")
    assert c.alerting.notification_queue_capacity == 10_000
    assert c.rules.resend_delay == 60_000
    assert parse_config("").alerting.alertmanagers == []


def test_a_prometheus_alerting_section_loads():
    c = parse_config("""
global: {external_labels: {cluster: eu1}}
alerting:
  alert_relabel_configs:
    - {source_labels: [severity], regex: debug, action: drop}
  alertmanagers:
    - scheme: https
      path_prefix: /alertmanager/
      timeout: 3s
      api_version: v2
      basic_auth: {username: u, password: secret}
      tls_config: {insecure_skip_verify: true}
      static_configs: [{targets: ['am1:9093', 'am2:9093'], labels: {dc: x}}]
      file_sd_configs: [{files: [ams.json]}]
      relabel_configs:
        - {source_labels: [dc], regex: y, action: drop}
""")
    am = c.alerting.alertmanagers[0]
    assert am.timeout == 3000 and am.scheme == "https" and am.basic_auth.password.get_secret_value() == "secret"
    assert am.alerts_path() == "/alertmanager/api/v2/alerts"
    assert c.global_.external_labels == {"cluster": "eu1"}


@pytest.mark.parametrize("prefix, path", [("", "/api/v2/alerts"), ("/", "/api/v2/alerts"), ("am", "/am/api/v2/alerts"),
                                          ("/a//b/", "/a/b/api/v2/alerts"), ("/a/../b", "/b/api/v2/alerts")])
def test_the_alerts_path_is_joined_as_go_s_path_join(prefix, path):
    assert alerts_path(prefix) == path


@pytest.mark.parametrize("text, error", [
    ("alerting: {alertmanagers: [{api_version: v1}]}",
     "alerting.alertmanagers[0].api_version: Alertmanager API v1 is not supported: Shardmon speaks only v2"),
    ("alerting: {alertmanagers: [{api_version: v3}]}",
     "alerting.alertmanagers[0].api_version: expected Alertmanager api version to be one of [v1 v2] but got v3"),
    ("alerting: {alertmanagers: [{static_configs: [{targets: ['http://am:9093/']}]}]}",
     "'http://am:9093/' is not a valid hostname"),
    ("alerting: {alertmanagers: [{timeout: 10x}]}", "alerting.alertmanagers[0].timeout: not a valid duration string"),
    ("alerting: {alertmanagers: [{scheme: ftp}]}", "alerting.alertmanagers[0].scheme"),
    ("alerting: {alertmanagers: [{relabel_configs: [null]}]}",
     "alerting.alertmanagers[0].relabel_configs: empty or null Alertmanager target relabeling rule"),
    ("alerting: {alert_relabel_configs: [null]}", "alerting.alert_relabel_configs: empty or null alert relabeling rule"),
    ("alerting: {alert_relabel_configs: [{action: replace, regex: '('}]}", "alerting.alert_relabel_configs[0]"),
    ("alerting: {alertmanagers: [{oauth2: {client_id: x}}]}", "alerting.alertmanagers[0].oauth2: field not supported"),
    ("alerting: {alertmanagers: [{basic_auth: {username: u}, bearer_token: t}]}", "alerting.alertmanagers[0]: at most one"),
    ("alerting: {notification_queue_capacity: 0}", "alerting.notification_queue_capacity"),
    ("rules: {resend_delay: soon}", "rules.resend_delay: not a valid duration string"),
    ("alerting: {bogus: 1}", "alerting.bogus: field not supported"),
])
def test_bad_alerting_sections_name_the_field(text, error):
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert error in str(exc.value)


def test_a_url_target_is_allowed_when_relabeling_can_fix_it():
    parse_config("""
alerting:
  alertmanagers:
    - static_configs: [{targets: ['http://am:9093/']}]
      relabel_configs: [{source_labels: [__address__], regex: 'http://(.*)/', target_label: __address__}]
""")
