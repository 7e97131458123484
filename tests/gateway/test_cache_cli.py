"""`muaalem cache warm` against a real redis-server."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import redis

from services.cli import main
from services.common.pb import asr_pb2, asr_pb2_grpc, common_pb2
from services.gateway.reference import quran
from services.gateway.reference.cache import decode_value
from services.gateway.reference.service import ReferenceService
from services.gateway.reference.settings import ReferenceCacheConfig
from tests.conftest import RedisServer
from tests.gateway.test_reference_service import CountingBuilder, ayah

TTL = 2_592_000


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


async def test_warm_one_surah_fills_redis_prints_memory_and_then_serves_hits(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    version = f"warm-{uuid.uuid4().hex[:8]}@0000"
    surah = 36  # 83 ayahs: several chunks over two worker processes
    argv = ["cache", "warm", "--surah", str(surah), "--redis", redis_server.url, "--model-version", version]
    assert main([*argv, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    count = quran.ayah_count(surah)
    assert re.search(rf"written\s*│\s*{count}\s", out)
    assert re.search(r"failed\s*│\s*0\s", out)
    assert "Redis used_memory before" in out and "Redis used_memory after" in out
    assert "MEMORY USAGE, mean of" in out
    assert f"keys in {version}:*" in out

    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{version}:*"))
        assert len(keys) == count
        assert f"{version}:{surah}:1" in keys and f"{version}:{surah}:{count}" in keys
        assert TTL - 60 <= client.ttl(f"{version}:{surah}:{count}") <= TTL
        raw = client.get(f"{version}:{surah}:5")
        assert isinstance(raw, bytes)
        assert decode_value(raw).words[0].ayah == 5
    finally:
        client.close()

    # Warm keys are what the gateway's lookups find.
    counter = CountingBuilder()
    service = ReferenceService.from_config(ReferenceCacheConfig(redis_url=redis_server.url), build=counter)
    try:
        assert (await service.get(ayah(surah, 12), None, version)).cache_hit
        assert counter.calls == 0
    finally:
        await service.close()

    # A second run skips every key already present.
    assert main([*argv, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"already present \(skipped\)\s*│\s*{count}\s", out)
    assert re.search(r"written\s*│\s*0\s", out)


def test_warm_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "warm", "--surah", "115", "--redis", "redis://127.0.0.1:1/0", "--model-version", "v"]) == 2
    assert "valid surahs are 1..114" in capsys.readouterr().out
    assert main(["cache", "warm", "--surah", "1", "--redis", "127.0.0.1:6379", "--model-version", "v"]) == 2
    assert "redis://" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["cache", "warm", "--all", "--surah", "1"])


def test_warm_reports_an_unreachable_redis_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "warm", "--surah", "1", "--redis", "redis://127.0.0.1:1/0", "--model-version", "v"]) == 1
    assert "Connection refused" in capsys.readouterr().out


class ModelInfoOnly(asr_pb2_grpc.AsrServiceServicer):
    """An asr stage that answers GetModelInfo only: all the warm command asks of it."""

    def GetModelInfo(self, request: asr_pb2.GetModelInfoRequest, context: Any) -> asr_pb2.GetModelInfoResponse:
        return asr_pb2.GetModelInfoResponse(
            model_version=common_pb2.ModelVersion(name="obadx/muaalem-model-v3_2", weights_digest="feedc0de12345678")
        )


def test_warm_takes_the_namespace_from_the_asr_stage_like_the_gateway(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    asr_pb2_grpc.add_AsrServiceServicer_to_server(ModelInfoOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        argv = ["cache", "warm", "--surah", "108", "--redis", redis_server.url, "--asr", f"127.0.0.1:{port}"]
        assert main(argv) == 0
    finally:
        server.stop(None)
    assert "muaalem-model-v3_2@feedc0de" in capsys.readouterr().out
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.exists("muaalem-model-v3_2@feedc0de:108:3") == 1
    finally:
        client.close()
