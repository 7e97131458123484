"""The gateway with every stage in its own process (`MUAALEM_GATEWAY_MODE=local`): the one-box
setup and the in-process baseline of the benchmark give the same kind of answer as the mesh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from services.client.options import build_request
from services.common.pb import common_pb2, gateway_pb2_grpc
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.server import build
from tests.conftest import loopback_env, serving


@pytest.fixture
async def local_gateway(tmp_path: Path) -> AsyncIterator[tuple[MeshServer, GatewayApp]]:
    environ = {
        **loopback_env("gateway"),
        "MUAALEM_GATEWAY_MODE": "local",
        "MUAALEM_GATEWAY_HTTP_PORT": "-1",
        "MUAALEM_ASR_MODEL": str(tmp_path / "absent"),
        "MUAALEM_ASR_DEV_FALLBACK": "tiny",
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_CACHE_DIR": str(tmp_path / "cache"),
    }
    server, app, _ = build(environ)
    async with serving(server, ready_timeout=120, grace=1):
        yield server, app


async def test_local_mode_runs_every_stage_in_process(
    local_gateway: tuple[MeshServer, GatewayApp], test_wav_bytes: bytes
) -> None:
    server, app = local_gateway
    request = build_request(test_wav_bytes, surah=8, ayah=75, words=(17, 9), run_rules_on_mismatch=True)
    direct = (await app.assess(request, None)).assessment
    assert not direct.degraded
    assert {s.stage for s in direct.stages if s.status == common_pb2.STAGE_STATUS_OK} >= {
        "audio",
        "reference",
        "asr",
        "energy",
        "verification",
        "alignment",
        "tajweed",
        "fusion",
    }
    assert direct.model_version.dev_weights
    assert all(w.time_span.end_s > 0 for w in direct.words)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await gateway_pb2_grpc.GatewayServiceStub(channel).Assess(request, timeout=60)
    assert [w.uthmani for w in reply.assessment.words] == [w.uthmani for w in direct.words]
    assert reply.assessment.cache_hit  # the second lookup of the same reference
