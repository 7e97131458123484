"""What the manifest tests share: the renders they look at, and how a container maps to its
service, its settings and its ports."""

from __future__ import annotations

from typing import Any

from kubernetes_validate import utils as kv_utils

from services.common.config import load_all_settings
from services.common.settings import SERVICES
from tests.deploy.manifests import (
    JOBS,
    MESH,
    MTLS,
    OVERLAYS,
    Obj,
    Render,
    Workload,
)

STAGES = ("asr", "alignment", "tajweed")
CLUSTER = (*OVERLAYS, MTLS)  # renders of the whole mesh
ALL = (*CLUSTER, *(f"jobs/{job}" for job in JOBS))
GPU_RENDERS = ("gpu", MTLS)
SCHEMA_VERSIONS = ("1.30.0", kv_utils.latest_version())
GPU = "nvidia.com/gpu"


def declared_settings() -> dict[str, Any]:
    return load_all_settings()


def owner_of(container: Obj) -> str | None:
    """The mesh service whose image (and so whose settings) a container runs."""
    repository = str(container["image"]).split(":", 1)[0]
    service = repository.rsplit("/", 1)[-1]
    return service if repository.startswith("muaalem/") and service in MESH else None


def grpc_port_of(render: Render, service: str, container: Obj) -> int:
    return int(render.setting(SERVICES[service].port, container))


def probe_port_of(render: Render, service: str, container: Obj) -> int:
    """Where the kubelet must probe: the plaintext health port when the mTLS component set
    one, else the gRPC port."""
    raw = render.env(container).get(f"MUAALEM_{service.upper()}_HEALTH_PORT")
    return int(raw) if raw else grpc_port_of(render, service, container)


def pods_of(renders: dict[str, Render], name: str) -> list[Workload]:
    return renders[name].workloads()
