"""A prometheus.yml using scraping's features (service discovery, relabeling, auth, TLS, limits) loads
unchanged, as a real Prometheus 2.42 (promtool) accepts it; an unsupported field is a clear error."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError

PROMETHEUS_YML = """
global:
  scrape_interval: 15s
  scrape_timeout: 10s
  external_labels: {cluster: prod}
scrape_configs:
  - job_name: kubernetes-nodes-cadvisor
    scheme: https
    metrics_path: /metrics/cadvisor
    tls_config:
      ca_file: {dir}/ca.crt
      insecure_skip_verify: false
      server_name: kubernetes
    authorization:
      credentials_file: {dir}/token
    kubernetes_sd_configs:
      - role: node
        api_server: https://kubernetes.default.svc:443
        tls_config: {ca_file: {dir}/ca.crt}
        bearer_token_file: {dir}/token
    relabel_configs:
      - action: labelmap
        regex: __meta_kubernetes_node_label_(.+)
      - source_labels: [__meta_kubernetes_node_name]
        target_label: node
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: container_(network_tcp_usage_total|tasks_state)
        action: drop
    sample_limit: 50000
    label_limit: 64
    label_value_length_limit: 2048
    body_size_limit: 50MB
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        namespaces: {names: [default, monitoring]}
        selectors: [{role: pod, label: "app=web"}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: ([^:]+)(?::\\d+)?;(\\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__address__]
        modulus: 4
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        regex: "0"
        action: keep
  - job_name: node
    file_sd_configs:
      - files: [{dir}/nodes/*.json, {dir}/nodes/*.yml]
        refresh_interval: 1m
    basic_auth: {username: prom, password_file: {dir}/password}
    target_limit: 1000
  - job_name: blackbox
    metrics_path: /probe
    params: {module: [http_2xx]}
    http_sd_configs:
      - url: http://sd.example:8080/targets
        refresh_interval: 30s
    static_configs:
      - targets: [https://example.com]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: blackbox:9115
"""


def _write(tmp_path) -> str:
    (tmp_path / "nodes").mkdir()
    for name in ("ca.crt", "token", "password"):
        (tmp_path / name).write_text("x\n")
    return PROMETHEUS_YML.replace("{dir}", str(tmp_path))


def test_a_prometheus_yml_with_discovery_relabeling_auth_and_limits_loads_unchanged(tmp_path):
    config = parse_config(_write(tmp_path))
    jobs = {sc.job_name: sc for sc in config.scrape_configs}
    assert set(jobs) == {"kubernetes-nodes-cadvisor", "kubernetes-pods", "node", "blackbox"}
    assert jobs["kubernetes-nodes-cadvisor"].sample_limit == 50000
    assert len(jobs["kubernetes-pods"].relabel_configs) == 4
    assert jobs["node"].target_limit == 1000


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian's prometheus package) not installed")
def test_promtool_accepts_the_same_file(tmp_path):
    import yaml

    # Debian builds Prometheus without Kubernetes discovery: promtool checks the rest of the file.
    raw = yaml.safe_load(_write(tmp_path))
    raw["scrape_configs"] = [sc for sc in raw["scrape_configs"] if "kubernetes_sd_configs" not in sc]
    assert len(raw["scrape_configs"]) == 2
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(raw))
    out = subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("snippet, where", [
    ("    oauth2: {client_id: x, token_url: http://t}\n", "scrape_configs[2].oauth2"),
    ("    scrape_fancy: true\n", "scrape_configs[2].scrape_fancy"),
])
def test_an_unsupported_field_is_an_error_naming_it(tmp_path, snippet, where):
    text = _write(tmp_path).replace("    target_limit: 1000\n", "    target_limit: 1000\n" + snippet)
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert where in str(exc.value)
