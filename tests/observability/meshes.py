"""The services as separate processes (the launcher's Mesh), with metrics ports and any
extra environment an observability test needs, and a client that assesses the sample."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from pathlib import Path

import grpc

from services.client.options import build_request
from services.common.pb import gateway_pb2, gateway_pb2_grpc
from services.launcher import Mesh
from tests.conftest import AUDIO_DIR, launcher_env

MOSHAF = {"madd_monfasel_len": 2, "madd_mottasel_len": 4, "madd_mottasel_waqf": 4, "madd_aared_len": 2}


def start_mesh(root: Path, extra: Mapping[str, str] | None = None) -> Mesh:
    mesh = Mesh(env=launcher_env(root, extra), log_dir=root / "logs", start_timeout_s=90)
    mesh.start()
    return mesh


def metrics_port(mesh: Mesh, service: str) -> int:
    return int(mesh.service_env()[f"MUAALEM_{service.upper()}_METRICS_PORT"])


def scrape(mesh: Mesh, service: str) -> str:
    url = f"http://127.0.0.1:{metrics_port(mesh, service)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def assess_request(surah: int = 8, ayah: int = 75) -> gateway_pb2.AssessRequest:
    return build_request(
        (AUDIO_DIR / "test.wav").read_bytes(),
        surah=surah,
        ayah=ayah,
        words=(17, 9) if (surah, ayah) == (8, 75) else None,
        moshaf=MOSHAF,
        name_hint="test.wav",
        run_rules_on_mismatch=True,
    )


def assess(
    mesh: Mesh, request: gateway_pb2.AssessRequest, metadata: list[tuple[str, str]] | None = None
) -> gateway_pb2.Assessment:
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        reply = gateway_pb2_grpc.GatewayServiceStub(channel).Assess(
            request, metadata=[("authorization", f"Bearer {mesh.api_key}"), *(metadata or [])], timeout=120
        )
    return reply.assessment
