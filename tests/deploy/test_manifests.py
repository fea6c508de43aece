"""deploy/ against the node it deploys: the Kubernetes manifests and the
Containerfile are parsed (no cluster or container engine runs here) and
matched with the server's real options, ports, health services and console
script, so a renamed flag or port fails here and not in a province's
rollout."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from server import config
from server.app import SERVICES

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"


def _docs() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _env_names() -> set[str]:
    """YIBAO_<OPTION> for every option the node really has."""
    return {
        "YIBAO_" + opt.removeprefix("--").upper().replace("-", "_")
        for action in config.parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


def _node_env() -> dict[str, str]:
    return dict(_one("ConfigMap", "yibao-node")["data"])


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_variable_is_an_option_the_node_has_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _node_env()
    deployment = _one("Deployment", "yibao-node")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = set(env) | {e["name"] for e in container.get("env", [])}
    assert names - _env_names() == set(), "variables no option reads"
    # The node's own parser over the ConfigMap as its environment: a value
    # it would refuse (a --peer target, an address, a store URL) fails here.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = config.parse([])
    assert not cfg.insecure and cfg.tls_cert and cfg.client_ca, "a province's node serves mTLS"
    assert cfg.health_listen == env["YIBAO_HEALTH_LISTEN"]
    assert set(cfg.peers) == {p.split("=", 1)[0] for p in env["YIBAO_PEER"].split(";")}
    assert all(target.startswith("dns:///") for target in cfg.peers.values()), "peers resolve to every pod"
    assert cfg.workers == int(container["resources"]["requests"]["cpu"]), "one worker per requested core"
    assert cfg.replicas_for(cfg.regional_redis_url or cfg.redis_url) >= 1, "the province's cluster must acknowledge payments on a replica"


def test_ports_probes_and_services_match_the_node() -> None:
    env = _node_env()
    spec = _one("Deployment", "yibao-node")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "grpc": _port(env["YIBAO_LISTEN"]),
        "metrics": _port(env["YIBAO_METRICS_LISTEN"]),
        "health": _port(env["YIBAO_HEALTH_LISTEN"]),
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc_probe = container[probe]["grpc"]
        assert grpc_probe["port"] == ports["health"], f"{probe} must ask the plaintext health port"
        assert grpc_probe["service"] in ("", *SERVICES), f"{probe}: the node reports no service {grpc_probe['service']!r}"
    assert spec["terminationGracePeriodSeconds"] > config.Config().grace_s
    assert container["envFrom"][0]["configMapRef"]["name"] == "yibao-node"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for var in ("YIBAO_TLS_CERT", "YIBAO_TLS_KEY", "YIBAO_CLIENT_CA", "YIBAO_NODE_KEY", "YIBAO_TRUST_LIST"):
        assert str(Path(env[var]).parent) in mounts, f"{var}={env[var]} is on no mounted volume"


def test_service_monitor_pdb_and_autoscaler_find_the_pods() -> None:
    deployment = _one("Deployment", "yibao-node")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    service = _one("Service", "yibao-node")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    monitor = _one("ServiceMonitor", "yibao-node")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    # The alerts select job="yibao-node": prometheus-operator names the job after the Service.
    assert service["metadata"]["name"] == "yibao-node"
    pdb = _one("PodDisruptionBudget", "yibao-node")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _one("HorizontalPodAutoscaler", "yibao-node")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "yibao-node"}
    assert hpa["spec"]["minReplicas"] >= 2, "one node down must leave one serving"


def test_the_redis_cluster_is_what_the_node_expects() -> None:
    conf = _one("ConfigMap", "redis-cluster")["data"]["redis.conf"]
    for line in ("cluster-enabled yes", "appendonly yes", "appendfsync always"):
        assert line in conf.splitlines()
    statefulset = _one("StatefulSet", "redis-cluster")
    assert statefulset["spec"]["replicas"] == 6
    job = _one("Job", "redis-cluster-create")
    (create,) = job["spec"]["template"]["spec"]["containers"]
    assert "--cluster-replicas 1" in " ".join(create["args"])
    assert _node_env()["YIBAO_REGIONAL_REDIS_URL"].startswith("redis+cluster://redis-cluster-0.redis-cluster:")


def test_containerfile_runs_the_console_script_on_the_ports_it_exposes() -> None:
    text = CONTAINERFILE.read_text()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    (entry,) = re.findall(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    assert entry in scripts
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    env = dict(re.findall(r"(YIBAO_[A-Z_]+)=(\S+)", text))
    assert env.keys() <= _env_names()
    assert exposed == {_port(env["YIBAO_LISTEN"]), _port(env["YIBAO_METRICS_LISTEN"]), _port(env["YIBAO_HEALTH_LISTEN"])}
    container_ports = {p["containerPort"] for p in _one("Deployment", "yibao-node")["spec"]["template"]["spec"]
                       ["containers"][0]["ports"]}  # fmt: skip
    assert exposed == container_ports
    assert re.search(r"^USER \d+", text, re.M), "the node runs as an unprivileged user"
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".venv", "target"} <= ignored, "the build context leaves out the virtualenv and Rust's output"
    assert re.search(r"^ && maturin build --release --out /wheels", text, re.M), "stage one builds the node's wheel"


@pytest.mark.parametrize("option", ["--health-listen", "--min-replicas", "--peer", "--log-format"])
def test_options_the_manifests_rely_on_are_in_help(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(["--help"])
    assert option in capsys.readouterr().out
