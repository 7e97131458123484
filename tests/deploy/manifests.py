"""Renders the kustomizations under deploy/k8s and answers questions about the objects.

The expected ports and variable names come from the settings registry
(services.common.config), so the manifests are checked against what the servers really read.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.common.config import Setting
from services.common.settings import SERVICES

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
MESH = tuple(SERVICES)  # gateway, asr, alignment, tajweed: the container names of the mesh
OVERLAYS = ("cpu", "gpu")
JOBS = ("cache-warm", "fetch-weights")
# An overlay with the mTLS component added, as docs/deploy.md tells operators to do.
MTLS = "gpu+mtls"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")

Obj = dict[str, Any]


def kustomize(directory: Path) -> list[Obj]:
    try:
        done = subprocess.run(
            ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise AssertionError("kubectl is not installed: the deploy tests render with `kubectl kustomize`") from None
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def kustomize_with_component(overlay: Path, component: Path, workdir: Path) -> list[Obj]:
    """An overlay plus a component, through a kustomization written in `workdir` (kustomize
    takes only relative paths)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(overlay, workdir)],
                "components": [os.path.relpath(component, workdir)],
            }
        )
    )
    return kustomize(workdir)


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet or Job: its pod template is what the checks look at."""

    obj: Obj

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def pod(self) -> Obj:
        return dict(self.obj["spec"]["template"]["spec"])

    @property
    def pod_labels(self) -> dict[str, str]:
        return dict(self.obj["spec"]["template"]["metadata"].get("labels", {}))

    def containers(self, *, init: bool = True) -> list[Obj]:
        found = list(self.pod["containers"])
        return [*self.pod.get("initContainers", []), *found] if init else found

    def container(self, name: str) -> Obj:
        return next(c for c in self.pod["containers"] if c["name"] == name)


@dataclass(frozen=True)
class Render:
    name: str
    objects: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert matches, f"{self.name}: no {kind} {name}"
        return matches[0]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}

    def workloads(self) -> list[Workload]:
        return [Workload(o) for o in self.objects if o["kind"] in WORKLOAD_KINDS]

    def workload(self, kind: str, name: str) -> Workload:
        return Workload(self.get(kind, name))

    def mesh(self) -> Iterator[tuple[str, Workload, Obj]]:
        """(service, Deployment, container) of each mesh service this render deploys."""
        for service in MESH:
            if service in self.names("Deployment"):
                workload = self.workload("Deployment", service)
                yield service, workload, workload.container(service)

    def env(self, container: Obj) -> dict[str, str | None]:
        """The container's environment as the kubelet builds it: ConfigMaps of envFrom, then env
        (later wins). Values from Secrets are None: unknown here."""
        result: dict[str, str | None] = {}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            assert ref is not None, f"{self.name}: only ConfigMaps are expected in envFrom, got {source}"
            result.update(self.get("ConfigMap", ref["name"]).get("data", {}))
        for item in container.get("env", []):
            result[item["name"]] = item.get("value", "") if "valueFrom" not in item else None
        return result

    def setting(self, setting: Setting[Any], container: Obj) -> Any:
        """The value the process would read for `setting` in this container."""
        known = {k: v for k, v in self.env(container).items() if v is not None}
        return setting.get(known)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container: Obj, name: str) -> int | None:
    for port in container.get("ports", []):
        if port.get("name") == name:
            return int(port["containerPort"])
    return None


def resolve_target_port(container: Obj, target: int | str) -> int | None:
    """The container port a Service's targetPort (a number or a port name) lands on."""
    if isinstance(target, int):
        numbers = {int(p["containerPort"]) for p in container.get("ports", [])}
        return target if target in numbers else None
    return container_port(container, target)


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (`1536Mi`, `600mb` as Redis writes it, `2`) in base units."""
    text = str(value).strip()
    units = {
        "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4,
        "kb": 1000, "mb": 1000**2, "gb": 1000**3,
        "k": 1000, "m": 1000**2, "g": 1000**3,
    }  # fmt: skip
    lowered = text.lower()
    for suffix in sorted(units, key=len, reverse=True):
        if lowered.endswith(suffix) and lowered[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(lowered[: -len(suffix)]) * units[suffix]
    return float(text)
