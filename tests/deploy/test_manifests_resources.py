"""Manifests: resources, GPUs and their placement, autoscaling and disruption budgets."""

from __future__ import annotations

import importlib

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from tests.deploy.manifests import (
    K8S,
    Render,
    quantity,
    selects,
)
from tests.deploy.render_checks import (
    ALL,
    CLUSTER,
    GPU,
    GPU_RENDERS,
)

# --- resources and GPUs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_every_container_has_resources(renders: dict[str, Render], name: str) -> None:
    for workload in renders[name].workloads():
        for container in workload.containers():
            label = f"{workload.name}/{container['name']}"
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            assert {"cpu", "memory"} <= set(requests), f"{label}: requests {requests}"
            assert "memory" in limits, f"{label}: no memory limit"
            assert quantity(limits["memory"]) >= quantity(requests["memory"]), label


@pytest.mark.parametrize("name", ALL)
def test_only_asr_asks_for_a_gpu(renders: dict[str, Render], name: str) -> None:
    for workload in renders[name].workloads():
        for container in workload.containers():
            resources = container.get("resources", {})
            asks = GPU in resources.get("requests", {}) or GPU in resources.get("limits", {})
            label = f"{workload.name}/{container['name']}"
            if name in GPU_RENDERS and (workload.name, container["name"]) == ("asr", "asr"):
                assert resources["requests"][GPU] == resources["limits"][GPU] == 1, label
            else:
                assert not asks, f"{label} asks for a GPU"


@pytest.mark.parametrize("name", CLUSTER)
def test_asr_placement(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    asr = render.workload("Deployment", "asr")
    device = render.env(asr.container("asr")).get("MUAALEM_ASR_DEVICE")
    if name in GPU_RENDERS:
        assert device == "cuda"
        assert any(t["key"] == GPU and t["effect"] == "NoSchedule" for t in asr.pod.get("tolerations", []))
        assert asr.pod.get("nodeSelector"), "GPU pods need a node selector"
    else:
        assert device == "cpu"
        assert "tolerations" not in asr.pod and "nodeSelector" not in asr.pod


@pytest.mark.parametrize("name", GPU_RENDERS)
def test_gpu_weights_come_from_a_read_only_volume(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    asr = render.workload("Deployment", "asr")
    container = asr.container("asr")
    claims = {v["name"]: v["persistentVolumeClaim"] for v in asr.pod["volumes"] if "persistentVolumeClaim" in v}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"] if m["name"] in claims}
    env = render.env(container)
    for variable in ("MUAALEM_ASR_MODEL", "MUAALEM_SEGMENTER_MODEL"):
        path = env[variable] or ""
        mount = next((m for p, m in mounts.items() if path.startswith(p + "/")), None)
        assert mount is not None, f"{variable}={path} is not on a volume"
        assert mount.get("readOnly") and claims[mount["name"]].get("readOnly"), f"{variable}: mount it read-only"
        assert claims[mount["name"]]["claimName"] in render.names("PersistentVolumeClaim")
    fetch = renders["jobs/fetch-weights"].workload("Job", "fetch-weights")
    script = " ".join(fetch.container("fetch-weights")["args"])
    for variable in ("MUAALEM_ASR_MODEL", "MUAALEM_SEGMENTER_MODEL"):
        assert f"--local-dir {env[variable]}" in script, f"fetch-weights does not write {env[variable]}"


# --- scaling and disruption ------------------------------------------------------------------


@pytest.mark.parametrize("name", CLUSTER)
def test_every_deployment_has_a_pdb_and_an_hpa(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    for service, workload, _ in render.mesh():
        assert "replicas" not in workload.obj["spec"], f"{service}: the HPA owns the replica count"
        pdbs = [
            p
            for p in render.of_kind("PodDisruptionBudget")
            if selects(p["spec"]["selector"]["matchLabels"], workload.pod_labels)
        ]
        assert len(pdbs) == 1, f"{service}: {len(pdbs)} PodDisruptionBudgets"
        hpas = [
            h
            for h in render.of_kind("HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        ]
        assert len(hpas) == 1, f"{service}: {len(hpas)} HorizontalPodAutoscalers"
        spec = hpas[0]["spec"]
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], service
        metrics = spec["metrics"]
        kinds = {(m["type"], m.get("resource", m.get("pods", {}).get("metric", {})).get("name")) for m in metrics}
        if service == "asr":
            assert ("Pods", "muaalem_asr_queue_depth") in kinds
        else:
            assert ("Resource", "cpu") in kinds, service


def test_asr_hpa_metric_is_exported_and_served() -> None:
    """The HPA's custom metric is one the asr process exports, under the name the
    prometheus-adapter rule serves."""
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    rules = values["rules"]["custom"]
    served = {rule["name"]["as"]: rule for rule in rules}
    docs = yaml.safe_load_all((K8S / "base" / "asr.yaml").read_text())
    hpa = next(doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert metric in served
    assert served[metric]["seriesQuery"].startswith(metric + "{")
    importlib.import_module("services.asr.metrics")  # registers the asr's gauges
    assert f"# TYPE {metric} gauge" in generate_latest(REGISTRY).decode()
