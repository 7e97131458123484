"""The rendered Kubernetes manifests: valid for Kubernetes 1.30 and the newest schema bundled
with kubernetes-validate, and consistent in the ways no schema checks (labels, ports, probes).
Resources and scaling, security and network policies, and configuration are checked beside
this module (test_manifests_*.py)."""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate import utils as kv_utils

from services.common.settings import (
    MAX_CONNECTION_AGE_S,
    SERVICES,
    SHUTDOWN_DELAY_S,
    SHUTDOWN_GRACE_S,
)
from tests.deploy.manifests import (
    MESH,
    Render,
    container_port,
    resolve_target_port,
    selects,
)
from tests.deploy.render_checks import (
    ALL,
    CLUSTER,
    GPU_RENDERS,
    SCHEMA_VERSIONS,
    STAGES,
    declared_settings,
    grpc_port_of,
    probe_port_of,
)

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
        grpc_port = grpc_port_of(render, service, container)
        assert container_port(container, "grpc") == grpc_port, service
        assert container_port(container, "metrics") == render.setting(address.metrics_port, container), service
        svc = render.get("Service", service)
        ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
        assert ports["grpc"] == grpc_port, f"Service/{service}"


@pytest.mark.parametrize("name", CLUSTER)
def test_gateway_http_port_is_the_servers(renders: dict[str, Render], name: str) -> None:
    http = declared_settings()["MUAALEM_GATEWAY_HTTP_PORT"]
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
        expected = probe_port_of(render, service, container)
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
