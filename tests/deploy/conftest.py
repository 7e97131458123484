"""Every kustomization rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import JOBS, K8S, MTLS, OVERLAYS, Render, kustomize, kustomize_with_component


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Render]:
    rendered = {name: Render(name, kustomize(K8S / "overlays" / name)) for name in OVERLAYS}
    rendered[MTLS] = Render(
        MTLS,
        kustomize_with_component(
            K8S / "overlays" / "gpu", K8S / "components" / "mtls", tmp_path_factory.mktemp("gpu-mtls")
        ),
    )
    for job in JOBS:
        rendered[f"jobs/{job}"] = Render(f"jobs/{job}", kustomize(K8S / "jobs" / job))
    return rendered
