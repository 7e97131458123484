"""Manifests: unprivileged pods, secrets kept out of literals and documented, network policies
that let only the gateway reach the stages and Redis."""

from __future__ import annotations

import pytest

from services.common.settings import (
    SERVICES,
)
from tests.deploy.manifests import (
    JOBS,
    MESH,
    REPO,
    Render,
    Workload,
    selects,
)
from tests.deploy.render_checks import (
    ALL,
    CLUSTER,
    STAGES,
    grpc_port_of,
    owner_of,
)

# --- security --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_pods_run_unprivileged(renders: dict[str, Render], name: str) -> None:
    accounts = {a["metadata"]["name"]: a for a in renders["cpu"].of_kind("ServiceAccount")}
    for workload in renders[name].workloads():
        pod = workload.pod
        assert pod.get("automountServiceAccountToken") is False, workload.name
        account = accounts.get(pod.get("serviceAccountName", ""))
        assert account is not None, f"{workload.name}: its ServiceAccount is not in the base"
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
        pod_non_root = pod.get("securityContext", {}).get("runAsNonRoot")
        for container in workload.containers():
            context = container.get("securityContext", {})
            label = f"{workload.name}/{container['name']}"
            assert context.get("runAsNonRoot", pod_non_root) is True, label
            assert context.get("allowPrivilegeEscalation") is False, label
            assert context.get("readOnlyRootFilesystem") is True, label
            assert context.get("capabilities", {}).get("drop") == ["ALL"], label


@pytest.mark.parametrize("name", ALL)
def test_writable_paths_are_volumes(renders: dict[str, Render], name: str) -> None:
    """With a read-only root filesystem, every cache and /tmp must be a mounted volume."""
    render = renders[name]
    for workload in render.workloads():
        for container in workload.containers():
            if owner_of(container) is None:
                continue
            writable = [m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")]
            env = render.env(container)
            paths = ["/tmp"] + [env[v] or "" for v in ("NUMBA_CACHE_DIR", "HF_HOME", "MUAALEM_CACHE_DIR") if env.get(v)]
            for path in paths:
                assert any(path == m or path.startswith(m + "/") for m in writable), (
                    f"{workload.name}/{container['name']}: {path} is not on a writable volume"
                )


@pytest.mark.parametrize("name", ALL)
def test_secrets_are_not_literals(renders: dict[str, Render], name: str) -> None:
    for workload in renders[name].workloads():
        for container in workload.containers():
            for item in container.get("env", []):
                if item["name"].endswith(("_PASSWORD", "_AUTH")) or item["name"] == "MUAALEM_API_KEYS":
                    assert "secretKeyRef" in item.get("valueFrom", {}), f"{workload.name}: {item['name']}"


def _secret_names(render: Render) -> set[str]:
    names = set()
    for workload in render.workloads():
        names |= {v["secret"]["secretName"] for v in workload.pod.get("volumes", []) if "secret" in v}
        for container in workload.containers():
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


def test_referenced_secrets_are_documented(renders: dict[str, Render]) -> None:
    """The manifests reference Secrets and never create them: docs/deploy.md must say how."""
    docs = (REPO / "docs" / "deploy.md").read_text()
    referenced = set().union(*(_secret_names(renders[name]) for name in ALL))
    tls = {name for name in referenced if name.startswith("muaalem-tls-")}
    assert tls == {f"muaalem-tls-{service}" for service in MESH}
    for secret in referenced - tls:
        assert f"secret generic {secret}" in docs, f"docs/deploy.md does not say how to create {secret}"
    assert "muaalem-tls-<service>" in docs


# --- network policies ------------------------------------------------------------------------


def _selected(workloads: list[Workload], selector: dict[str, str]) -> set[str]:
    return {f"{w.kind}/{w.name}" for w in workloads if selects(selector, w.pod_labels)}


@pytest.mark.parametrize("name", CLUSTER)
def test_network_policies(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    # The warm-up Job's pods are admitted too: count them among the pods a policy may name.
    pods = render.workloads() + [w for job in JOBS for w in renders[f"jobs/{job}"].workloads()]
    policies = {p["metadata"]["name"]: p for p in render.of_kind("NetworkPolicy")}
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] for p in policies.values())
    covered: set[str] = set()
    for policy_name, policy in policies.items():
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selector:
            continue
        targets = _selected(render.workloads(), selector)
        assert targets, f"NetworkPolicy/{policy_name} selects no pods"
        covered |= targets
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert _selected(pods, peer["podSelector"]["matchLabels"]), f"{policy_name}: a peer selects no pods"
    in_cluster = {f"{w.kind}/{w.name}" for w in render.workloads()}
    assert covered == in_cluster, f"pods no policy admits anything to: {in_cluster - covered}"


def _admitted(render: Render, pods: list[Workload], target: str) -> dict[int, set[str]]:
    """Port -> the in-namespace pods (or `namespace:<labels>`) the policies admit to `target`."""
    admitted: dict[int, set[str]] = {}
    workload = render.workload("StatefulSet" if target == "redis" else "Deployment", target)
    for policy in render.of_kind("NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"].get("matchLabels", {}), workload.pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            peers: set[str] = set()
            for peer in rule.get("from", [{"anywhere": True}]):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    peers |= _selected(pods, peer["podSelector"]["matchLabels"])
                else:
                    peers.add(f"outside:{peer}")
            for port in rule.get("ports", [{"port": "all"}]):
                admitted.setdefault(port["port"], set()).update(peers)
    return admitted


@pytest.mark.parametrize("name", CLUSTER)
def test_only_the_gateway_reaches_the_stages_and_redis(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    pods = render.workloads() + [w for job in JOBS for w in renders[f"jobs/{job}"].workloads()]
    gateway_code = {
        f"{w.kind}/{w.name}"
        for w in pods
        if any(str(c["image"]).startswith("muaalem/gateway:") for c in w.containers())
    }
    assert gateway_code == {"Deployment/gateway", "Job/cache-warm"}
    for stage in STAGES:
        container = render.workload("Deployment", stage).container(stage)
        metrics_port = render.setting(SERVICES[stage].metrics_port, container)
        admitted = _admitted(render, pods, stage)
        assert set(admitted) == {grpc_port_of(render, stage, container), metrics_port}, stage
        assert admitted[grpc_port_of(render, stage, container)] == {"Deployment/gateway"}, stage
        assert all(p.startswith("outside:") and "namespaceSelector" in p for p in admitted[metrics_port]), stage
    redis = _admitted(render, pods, "redis")
    assert redis == {6379: gateway_code}
