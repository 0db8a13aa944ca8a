"""The SD sections of scrape_configs: Prometheus's field names, defaults and checks, errors naming the
field path."""

import pytest

from shardmon.ingest.discovery import TargetGroup, static_groups
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError


def _sc(body: str):
    return parse_config("scrape_configs:\n- job_name: j\n" + body).scrape_configs[0]


def test_prometheus_style_sd_sections_load():
    sc = _sc("""
  file_sd_configs:
  - files: [targets/*.json, 'more/*.yml']
  - files: [one.yaml]
    refresh_interval: 30s
  http_sd_configs:
  - url: https://sd.example.com/targets
    basic_auth: {username: prom, password_file: /etc/secret}
    tls_config: {ca_file: /etc/ca.pem, insecure_skip_verify: false, min_version: TLS12}
  kubernetes_sd_configs:
  - role: endpoints
    namespaces: {names: [shop, default]}
    selectors:
    - role: pod
      label: app.kubernetes.io/name=web
    - role: endpoints
      field: metadata.name=web
  - role: node
    kubeconfig_file: /etc/kubeconfig
  - role: pod
    api_server: https://10.0.0.1:6443
    authorization: {credentials_file: /var/run/token}
    tls_config: {insecure_skip_verify: true}
    attach_metadata: {node: true}
    selectors: [{role: node, label: pool=a}]
""")
    f0, f1 = sc.file_sd_configs
    assert f0.files == ["targets/*.json", "more/*.yml"] and f0.refresh_interval == 300_000
    assert f1.refresh_interval == 30_000
    (h,) = sc.http_sd_configs
    assert h.refresh_interval == 60_000 and h.basic_auth.password_file == "/etc/secret"
    assert h.tls_config.min_version == "TLS12"
    ep, node, pod = sc.kubernetes_sd_configs
    assert ep.role == "endpoints" and ep.namespaces.names == ["shop", "default"]
    assert ep.selector("pod") == ("app.kubernetes.io/name=web", "")
    assert ep.selector("endpoints") == ("", "metadata.name=web")
    assert ep.selector("service") == ("", "")
    assert node.kubeconfig_file == "/etc/kubeconfig" and node.api_server is None
    assert pod.api_server == "https://10.0.0.1:6443" and pod.attach_metadata.node


@pytest.mark.parametrize("body,error", [
    ("  file_sd_configs: [{files: []}]\n",
     "scrape_configs[0].file_sd_configs[0].files: file service discovery config must contain at least one path name"),
    ("  file_sd_configs: [{files: [targets.txt]}]\n",
     "scrape_configs[0].file_sd_configs[0].files: path name 'targets.txt' is not valid for file discovery"),
    ("  file_sd_configs: [{files: ['a/*/b.json']}]\n", "is not valid for file discovery"),
    ("  file_sd_configs: [{files: [a.json], refresh_interval: 0}]\n", "refresh_interval"),
    ("  file_sd_configs: [{files: [a.json], refresh: 5m}]\n",
     "scrape_configs[0].file_sd_configs[0].refresh: field not supported"),
    ("  http_sd_configs: [{url: 'ftp://x/sd'}]\n",
     "scrape_configs[0].http_sd_configs[0].url: URL scheme must be 'http' or 'https'"),
    ("  http_sd_configs: [{url: 'http:///sd'}]\n", "host is missing in URL"),
    ("  http_sd_configs: [{refresh_interval: 5s}]\n", "scrape_configs[0].http_sd_configs[0].url: Field required"),
    ("  http_sd_configs: [{url: 'http://x/sd', oauth2: {client_id: a}}]\n",
     "scrape_configs[0].http_sd_configs[0].oauth2: field not supported"),
    ("  http_sd_configs: [{url: 'http://x/sd', bearer_token: a, authorization: {credentials: b}}]\n",
     "authorization is not compatible with bearer_token & bearer_token_file"),
    ("  http_sd_configs: [{url: 'http://x/sd', basic_auth: {username: a}, authorization: {credentials: b}}]\n",
     "at most one of basic_auth, oauth2 & authorization must be configured"),
    ("  http_sd_configs: [{url: 'http://x/sd', authorization: {type: Basic, credentials: b}}]\n",
     'authorization type cannot be set to "basic"'),
    ("  http_sd_configs: [{url: 'http://x/sd', tls_config: {cert_file: c.pem}}]\n",
     "exactly one of key or key_file must be configured"),
    ("  kubernetes_sd_configs: [{api_server: 'http://k'}]\n",
     "scrape_configs[0].kubernetes_sd_configs[0].role: Field required"),
    ("  kubernetes_sd_configs: [{role: deployment}]\n", "unknown Kubernetes SD role 'deployment'"),
    ("  kubernetes_sd_configs: [{role: ingress}]\n", "'ingress' is not implemented by Shardmon yet"),
    ("  kubernetes_sd_configs: [{role: pod, api_server: 'http://k', kubeconfig_file: kc}]\n",
     "scrape_configs[0].kubernetes_sd_configs[0]: cannot use 'kubeconfig_file' and 'api_server' simultaneously"),
    ("  kubernetes_sd_configs: [{role: pod, bearer_token: t}]\n",
     "to use custom HTTP client configuration please provide the 'api_server' URL explicitly"),
    ("  kubernetes_sd_configs: [{role: pod, kubeconfig_file: kc, bearer_token: t}]\n",
     "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"),
    ("  kubernetes_sd_configs: [{role: pod, api_server: 'http://k', namespaces: {own_namespace: true}}]\n",
     "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously"),
    ("  kubernetes_sd_configs: [{role: service, selectors: [{role: pod, label: a=b}]}]\n",
     "service role supports only service selectors"),
    ("  kubernetes_sd_configs: [{role: pod, selectors: [{role: node, label: a=b}]}]\n",
     "pod role supports only pod selectors"),
    ("  kubernetes_sd_configs: [{role: endpoints, selectors: [{role: pod}, {role: pod}]}]\n",
     "duplicated selector role: pod"),
    ("  kubernetes_sd_configs: [{role: pod, attach_metadata: {namespace: true}}]\n",
     "scrape_configs[0].kubernetes_sd_configs[0].attach_metadata.namespace: field not supported"),
])
def test_sd_config_errors_name_the_field(body, error):
    with pytest.raises(ConfigError) as exc:
        _sc(body)
    assert error in str(exc.value)


def test_static_configs_as_groups():
    sc = _sc("""
  static_configs:
  - targets: [a:1, b:1]
    labels: {env: prod}
  - targets: [c:1]
""")
    assert static_groups(sc) == [
        TargetGroup("0", [{"__address__": "a:1"}, {"__address__": "b:1"}], {"env": "prod"}),
        TargetGroup("1", [{"__address__": "c:1"}], {}),
    ]
    assert static_groups(sc)[0].label_sets() == [{"env": "prod", "__address__": "a:1"},
                                                 {"env": "prod", "__address__": "b:1"}]
    g = TargetGroup("s", [{"__address__": "x:1", "env": "dev"}], {"env": "prod", "team": "t"})
    assert g.label_sets() == [{"__address__": "x:1", "env": "dev", "team": "t"}]  # the target's label wins
    assert TargetGroup.from_dict(g.to_dict()) == g
