"""Manifests: how the gateway dials the stages, and every variable a container sets is a declared
setting with a valid value; images and Redis sizing."""

from __future__ import annotations

import re
import tomllib

import pytest

from services.common.config import ConfigError
from tests.deploy.manifests import (
    MESH,
    REPO,
    Render,
    quantity,
    selects,
)
from tests.deploy.render_checks import (
    ALL,
    CLUSTER,
    STAGES,
    declared_settings,
    grpc_port_of,
    owner_of,
)

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
        assert port == grpc_port_of(render, stage, stage_pods.container(stage)), f"{stage}: {target}"


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_variables_are_declared_settings(renders: dict[str, Render], name: str) -> None:
    """Every MUAALEM_* variable a container sets is one the code declares (and its value
    parses)."""
    registry = declared_settings()
    render = renders[name]
    problems = []
    for workload in render.workloads():
        for container in workload.containers():
            owner = owner_of(container)
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
