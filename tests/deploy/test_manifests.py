"""The rendered Kubernetes manifests: valid for Kubernetes 1.30 and the newest schema bundled
with kubernetes-validate, and consistent in the ways no schema checks (labels, ports, probes,
GPUs, security, autoscaling, network policies, variable names)."""

from __future__ import annotations

import importlib
import re
import tomllib
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from prometheus_client import REGISTRY, generate_latest

from services.common.config import ConfigError, load_all_settings
from services.common.settings import (
    MAX_CONNECTION_AGE_S,
    SERVICES,
    SHUTDOWN_DELAY_S,
    SHUTDOWN_GRACE_S,
)
from tests.deploy.manifests import (
    JOBS,
    K8S,
    MESH,
    MTLS,
    OVERLAYS,
    REPO,
    Obj,
    Render,
    Workload,
    container_port,
    quantity,
    resolve_target_port,
    selects,
)

STAGES = ("asr", "alignment", "tajweed")
CLUSTER = (*OVERLAYS, MTLS)  # renders of the whole mesh
ALL = (*CLUSTER, *(f"jobs/{job}" for job in JOBS))
GPU_RENDERS = ("gpu", MTLS)
SCHEMA_VERSIONS = ("1.30.0", kv_utils.latest_version())
GPU = "nvidia.com/gpu"
def _registry() -> dict[str, Any]:
    return load_all_settings()


def _owner(container: Obj) -> str | None:
    """The mesh service whose image (and so whose settings) a container runs."""
    repository = str(container["image"]).split(":", 1)[0]
    service = repository.rsplit("/", 1)[-1]
    return service if repository.startswith("muaalem/") and service in MESH else None




def _grpc_port(render: Render, service: str, container: Obj) -> int:
    return int(render.setting(SERVICES[service].port, container))


def _probe_port(render: Render, service: str, container: Obj) -> int:
    """Where the kubelet must probe: the plaintext health port when the mTLS component set
    one, else the gRPC port."""
    raw = render.env(container).get(f"MUAALEM_{service.upper()}_HEALTH_PORT")
    return int(raw) if raw else _grpc_port(render, service, container)


def _pods(renders: dict[str, Render], name: str) -> list[Workload]:
    return renders[name].workloads()


# --- schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", ALL)
def test_schema_strict(renders: dict[str, Render], name: str, version: str) -> None:
    """kubernetes-validate --strict: unknown fields and wrong types are errors; so is a kind
    without a bundled schema (everything here is a built-in kind)."""
    errors = []
    for obj in renders[name].objects:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{label}: {'.'.join(str(p) for p in exc.path)}: {exc.message}")
        except kv_utils.SchemaNotFoundError as exc:
            errors.append(f"{label}: {exc.message}")
    assert not errors, f"{name} against Kubernetes {version}:\n" + "\n".join(errors)


def test_renders_hold_the_mesh(renders: dict[str, Render]) -> None:
    for name in CLUSTER:
        render = renders[name]
        assert render.names("Deployment") == set(MESH), name
        assert render.names("StatefulSet") == {"redis"}, name
        assert {"redis", *STAGES, "gateway"} <= render.names("Service"), name


# --- labels, Services, ports -----------------------------------------------------------------


@pytest.mark.parametrize("name", CLUSTER)
def test_selectors_match_pod_labels(renders: dict[str, Render], name: str) -> None:
    for workload in renders[name].workloads():
        if workload.kind == "Job":
            continue
        selector = workload.obj["spec"]["selector"]["matchLabels"]
        assert selects(selector, workload.pod_labels), f"{workload.kind}/{workload.name}: {selector}"


@pytest.mark.parametrize("name", CLUSTER)
def test_services_reach_container_ports(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    for service in render.of_kind("Service"):
        label = f"Service/{service['metadata']['name']}"
        backends = [w for w in render.workloads() if selects(service["spec"]["selector"], w.pod_labels)]
        assert backends, f"{label} selects no pods"
        headless = service["spec"].get("clusterIP") == "None"
        for workload in backends:
            for port in service["spec"]["ports"]:
                landed = [resolve_target_port(c, port.get("targetPort", port["port"])) for c in workload.containers()]
                landed_on = [p for p in landed if p is not None]
                assert landed_on, f"{label} port {port['name']} reaches no container port of {workload.name}"
                if headless:
                    # Clients of a headless Service dial pod IPs at the Service's port number.
                    assert landed_on == [port["port"]], f"{label}: port {port['port']} != targetPort {landed_on}"


@pytest.mark.parametrize("name", CLUSTER)
def test_ports_are_the_servers_ports(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    for service, _, container in render.mesh():
        address = SERVICES[service]
        grpc_port = _grpc_port(render, service, container)
        assert container_port(container, "grpc") == grpc_port, service
        assert container_port(container, "metrics") == render.setting(address.metrics_port, container), service
        svc = render.get("Service", service)
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert ports["grpc"] == grpc_port, f"Service/{service}"


@pytest.mark.parametrize("name", CLUSTER)
def test_gateway_http_port_is_the_servers(renders: dict[str, Render], name: str) -> None:
    http = _registry()["MUAALEM_GATEWAY_HTTP_PORT"]
    render = renders[name]
    container = render.workload("Deployment", "gateway").container("gateway")
    assert container_port(container, "http") == render.setting(http, container)


@pytest.mark.parametrize("name", CLUSTER)
def test_servers_bind_all_interfaces(renders: dict[str, Render], name: str) -> None:
    """Native gRPC probes and other pods connect to the pod IP, not to loopback."""
    render = renders[name]
    for service, _, container in render.mesh():
        assert render.setting(SERVICES[service].host, container) == "0.0.0.0", service


# --- probes and lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("name", CLUSTER)
def test_every_container_has_probes(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    for workload in render.workloads():
        for container in workload.containers(init=False):
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{workload.name}/{container['name']} has no {probe}"
    for service, _, container in render.mesh():
        expected = _probe_port(render, service, container)
        assert expected in {int(p["containerPort"]) for p in container["ports"]}, service
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            grpc = container[probe].get("grpc")
            assert grpc is not None, f"{service} {probe} is not a native gRPC probe"
            assert isinstance(grpc["port"], int), f"{service} {probe}: gRPC probes take a port number"
            assert grpc["port"] == expected, f"{service} {probe} probes {grpc['port']}, the server serves {expected}"


@pytest.mark.parametrize("name", CLUSTER)
def test_asr_startup_probe_allows_loading_the_weights(renders: dict[str, Render], name: str) -> None:
    probe = renders[name].workload("Deployment", "asr").container("asr")["startupProbe"]
    budget_s = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
    assert budget_s >= (600 if name in GPU_RENDERS else 300), f"{budget_s} s to load ~2.4 GB of weights"


@pytest.mark.parametrize("name", CLUSTER)
def test_grace_period_covers_shutdown(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    for service, workload, container in render.mesh():
        delay = render.setting(SHUTDOWN_DELAY_S, container)
        grace = render.setting(SHUTDOWN_GRACE_S, container)
        assert delay >= 3, f"{service}: the endpoints need a few seconds to drop the pod before the drain"
        assert workload.pod["terminationGracePeriodSeconds"] > delay + grace, service
        assert render.setting(MAX_CONNECTION_AGE_S, container) > 0, service


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
            if _owner(container) is None:
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
        assert set(admitted) == {_grpc_port(render, stage, container), metrics_port}, stage
        assert admitted[_grpc_port(render, stage, container)] == {"Deployment/gateway"}, stage
        assert all(p.startswith("outside:") and "namespaceSelector" in p for p in admitted[metrics_port]), stage
    redis = _admitted(render, pods, "redis")
    assert redis == {6379: gateway_code}


# --- the gateway's view of the stages --------------------------------------------------------


@pytest.mark.parametrize("name", CLUSTER)
def test_gateway_dials_headless_services(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    gateway_env = render.env(render.workload("Deployment", "gateway").container("gateway"))
    for stage in STAGES:
        target = gateway_env.get(f"MUAALEM_{stage.upper()}_TARGET") or ""
        match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
        assert match, f"MUAALEM_{stage.upper()}_TARGET={target!r}: expected dns:///<service>:<port>"
        host, port = match.group(1), int(match.group(2))
        service = render.get("Service", host)
        assert service["spec"].get("clusterIP") == "None", f"Service/{host} must be headless for round_robin"
        stage_pods = render.workload("Deployment", stage)
        assert selects(service["spec"]["selector"], stage_pods.pod_labels), f"Service/{host} does not select {stage}"
        assert port == _grpc_port(render, stage, stage_pods.container(stage)), f"{stage}: {target}"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_variables_are_declared_settings(renders: dict[str, Render], name: str) -> None:
    """Every MUAALEM_* variable a container sets is one the code declares (and its value
    parses)."""
    registry = _registry()
    render = renders[name]
    problems = []
    for workload in render.workloads():
        for container in workload.containers():
            owner = _owner(container)
            if owner is None:
                continue
            env = render.env(container)
            known = {k: v for k, v in env.items() if v is not None}
            for variable in sorted(v for v in env if v.startswith("MUAALEM_")):
                declared = registry.get(variable)
                if declared is None:
                    problems.append(f"{workload.name}/{container['name']}: {variable} is not declared")
                    continue
                try:
                    declared.get(known)
                except ConfigError as exc:
                    problems.append(f"{workload.name}/{container['name']}: {exc}")
    assert not problems, "\n".join(problems)


def _project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@pytest.mark.parametrize("name", ALL)
def test_images_are_the_ones_build_sh_tags(renders: dict[str, Render], name: str) -> None:
    version = _project_version()
    for workload in renders[name].workloads():
        for container in workload.containers():
            image = str(container["image"])
            repository, _, tag = image.partition(":")
            if repository.startswith("muaalem/"):
                assert repository.removeprefix("muaalem/") in MESH, image
                assert tag == version, f"{image}: build.sh tags {version}"
            else:
                assert re.fullmatch(r"\d+(\.\d+)+(-[a-z0-9.]+)?", tag), f"{image}: pin a version tag"


@pytest.mark.parametrize("name", CLUSTER)
def test_redis_sized_for_the_references(renders: dict[str, Render], name: str) -> None:
    render = renders[name]
    conf = render.get("ConfigMap", next(n for n in render.names("ConfigMap") if n.startswith("redis-config")))
    settings = dict(
        line.split(None, 1) for line in conf["data"]["redis.conf"].splitlines() if line and not line.startswith("#")
    )
    assert settings["maxmemory-policy"] == "allkeys-lru"
    maxmemory = quantity(settings["maxmemory"])
    assert maxmemory >= 500 * 1000**2, "~500 MB of references must fit"
    redis = render.workload("StatefulSet", "redis").container("redis")
    limit = quantity(redis["resources"]["limits"]["memory"])
    assert limit >= 1.5 * maxmemory, "room for fragmentation and the snapshot fork"
    assert "--requirepass" in redis["args"]
    assert render.env(redis)["REDIS_PASSWORD"] is None, "the password comes from a Secret"
