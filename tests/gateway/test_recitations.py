"""Reference recitations end to end, with a real redis-server and every stage in process (local
mode, the tiny development checkpoint: its decode is noise, but the alignment, the prosody and the
cache are the real code): `reference add` of a recording, then Assess of another recording of the
same ayah with compare_to; the cached value's contents and TTL; a second Assess reads the cache;
an evicted value is recomputed from the stored audio; the refusals; a dead prosody stage."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import soundfile as sf

from services.client.options import build_request
from services.common.audio import decode_bytes
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.auth import hash_key, new_key
from services.gateway.prosody_stage import GrpcProsody
from services.gateway.reference.cache import ENTRY_FORMAT_VERSION, MAGIC
from services.gateway.reference.recitation_entry import decode_entry
from services.gateway.server import build
from tests.conftest import AUDIO_DIR, RedisServer, free_port, loopback_env, serving

librosa = pytest.importorskip("librosa")

THIRTY_DAYS = 30 * 24 * 3600
ADMIN_KEY, USER_KEY = new_key(), new_key()
ADMIN, USER = f"Bearer {ADMIN_KEY}", f"Bearer {USER_KEY}"


@pytest.fixture
async def gateway(tmp_path: Path, redis_instance: RedisServer) -> AsyncIterator[tuple[MeshServer, GatewayApp]]:
    environ = {
        **loopback_env("gateway"),
        "MUAALEM_GATEWAY_MODE": "local",
        "MUAALEM_GATEWAY_HTTP_PORT": "-1",
        "MUAALEM_ASR_MODEL": str(tmp_path / "absent"),
        "MUAALEM_ASR_DEV_FALLBACK": "tiny",
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_CACHE_DIR": str(tmp_path / "cache"),
        "MUAALEM_REDIS_URL": redis_instance.url,
        "MUAALEM_RECITATIONS_DIR": str(tmp_path / "recitations"),
        "MUAALEM_API_KEYS": f"teacher-admin:{hash_key(ADMIN_KEY)},learner:{hash_key(USER_KEY)}",
        "MUAALEM_ADMIN_KEY_NAMES": "teacher-admin",
    }
    server, app, _ = build(environ)
    async with serving(server, ready_timeout=120, grace=1):
        yield server, app


def _stretched_wav(samples: np.ndarray, factor: float) -> bytes:
    out = io.BytesIO()
    sf.write(out, librosa.effects.time_stretch(samples, rate=1 / factor), 16000, format="WAV", subtype="FLOAT")
    return out.getvalue()


@pytest.mark.slow
async def test_reference_add_then_assess_with_compare_to(
    gateway: tuple[MeshServer, GatewayApp], redis_instance: RedisServer, test_wav_bytes: bytes
) -> None:
    server, app = gateway
    assert app.recitations is not None
    teacher = decode_bytes(test_wav_bytes, name_hint="test.wav")
    version = await app.assessor.versions.current()
    add = gateway_pb2.AddReferenceRecitationRequest(
        audio=common_pb2.Audio(content=test_wav_bytes), surah=8, ayah=75, reciter="teacher"
    )
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.AddReferenceRecitation(add, metadata=[("authorization", USER)], timeout=60)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'learner' may not manage reference recitations" in (denied.value.details() or "")
        bad = gateway_pb2.AddReferenceRecitationRequest(
            audio=common_pb2.Audio(content=b"RIFF not really a wav"), surah=8, ayah=75, reciter="teacher"
        )
        with pytest.raises(grpc.aio.AioRpcError) as unreadable:
            await stub.AddReferenceRecitation(bad, metadata=[("authorization", ADMIN)], timeout=60)
        assert unreadable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        missing = gateway_pb2.AddReferenceRecitationRequest(
            audio=common_pb2.Audio(content=test_wav_bytes), surah=1, ayah=8, reciter="teacher"
        )
        with pytest.raises(grpc.aio.AioRpcError) as no_ayah:
            await stub.AddReferenceRecitation(missing, metadata=[("authorization", ADMIN)], timeout=60)
        assert no_ayah.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "1:8" in (no_ayah.value.details() or "") or "ayah" in (no_ayah.value.details() or "")
        reply = await stub.AddReferenceRecitation(add, metadata=[("authorization", ADMIN)], timeout=120)
        listed = await stub.ListReferenceRecitations(
            gateway_pb2.ListReferenceRecitationsRequest(), metadata=[("authorization", ADMIN)], timeout=10
        )
    (added,) = reply.added
    assert (added.surah, added.ayah, added.reciter, added.is_default) == (8, 75, "teacher", True)
    assert [r.reciter for r in listed.recitations] == ["teacher"]
    assert (Path(app.recitations.store.root) / "008" / "075" / "teacher.wav").exists()

    client = redis.Redis.from_url(redis_instance.url)
    key = f"{version}:8:75"
    raw = client.get(key)
    assert raw is not None and raw[:4] == MAGIC + bytes([ENTRY_FORMAT_VERSION])
    assert THIRTY_DAYS - 60 <= client.ttl(key) <= THIRTY_DAYS
    entry = decode_entry(raw)
    assert entry.reference.uthmani and entry.model_version == version
    (analysis,) = entry.recitations
    frames = analysis.features.pitch.f0_hz.shape[0]
    assert frames == pytest.approx(teacher.duration_s / 0.01, abs=2)  # pitch on a 10 ms grid
    assert analysis.features.pitch.median_hz > 0
    assert analysis.features.voice_quality.hnr_db != 0  # voice quality
    tokens = analysis.alignment.tokens
    assert tokens and all(t.span.end_s >= t.span.start_s for t in tokens)  # phonemes with times
    assert analysis.HasField("rhythm") and analysis.rhythm.percent_v > 0  # prosody: rhythm...
    assert analysis.melody.range_st > 0  # ...and melody
    assert analysis.computed_at > 0
    assert 10_000 < len(raw) < 200_000

    learner_audio = _stretched_wav(teacher.samples, 1.1)
    request = build_request(learner_audio, surah=8, ayah=75, run_rules_on_mismatch=True)
    request.compare_to = "teacher"
    first = (await app.assess(request, USER)).assessment
    assert first.HasField("comparison"), [(s.stage, s.message) for s in first.stages]
    c = first.comparison
    assert c.reciter == "teacher" and 0 < c.similarity <= 100
    assert c.words and c.tempo_ratio > 1.0
    assert "prosody" not in first.degraded and "comparison" not in first.degraded
    hit = {t.stage: t.duration_ms for s in first.stages for t in s.timings}
    assert hit["comparison.reference_cache_hit"] == 1.0  # read from the cache, not analysed again

    default = build_request(learner_audio, surah=8, ayah=75, run_rules_on_mismatch=True)
    default.compare_to = ""  # the ayah's default reciter
    second = (await app.assess(default, USER)).assessment
    assert second.comparison.reciter == "teacher"

    client.delete(key)  # evicted: recomputed from the stored audio
    third = (await app.assess(request, USER)).assessment
    hit = {t.stage: t.duration_ms for s in third.stages for t in s.timings}
    assert hit["comparison.reference_cache_hit"] == 0.0
    assert third.comparison.similarity == pytest.approx(first.comparison.similarity, abs=0.5)
    assert decode_entry(client.get(key) or b"").recitations

    # `cache warm --recitations` / `reference warm`: only what is missing is analysed.
    assert await app.recitations.warm(version) == 0
    client.delete(key)
    assert await app.recitations.warm(version) == 1
    assert client.ttl(key) > THIRTY_DAYS - 60

    # Refusals that name the problem.
    unknown = build_request(learner_audio, surah=8, ayah=75)
    unknown.compare_to = "nobody"
    with pytest.raises(InvalidArgument, match="'nobody' has no recitation of 8:75; registered: teacher"):
        await app.assess(unknown, USER)
    other_ayah = build_request(learner_audio, surah=8, ayah=74)
    other_ayah.compare_to = ""
    with pytest.raises(InvalidArgument, match="no reference recitation is registered for 8:74"):
        await app.assess(other_ayah, USER)
    with pytest.raises(InvalidArgument):
        await app.recitations.add(
            teacher.samples,
            surah=1,
            ayah=99,
            last_ayah=None,
            reciter="teacher",
            make_default=False,
            model_version=version,
        )
    with pytest.raises(InvalidArgument, match="reciter name"):
        await app.recitations.add(
            teacher.samples, surah=8, ayah=75, last_ayah=None, reciter="../x", make_default=False, model_version=version
        )

    # The prosody stage gone: the assessment still answers, without the comparison, degraded.
    assert app.assessor.comparer is not None
    app.assessor.comparer.prosody = GrpcProsody(f"127.0.0.1:{free_port()}")
    degraded = (await app.assess(request, USER)).assessment
    assert not degraded.HasField("comparison")
    assert "prosody" in degraded.degraded
    assert degraded.words  # the rest of the answer is there
    status = {s.stage: s.status for s in degraded.stages}
    assert status["comparison"] == common_pb2.STAGE_STATUS_SKIPPED

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        await stub.RemoveReferenceRecitation(
            gateway_pb2.RemoveReferenceRecitationRequest(surah=8, ayah=75, reciter="teacher"),
            metadata=[("authorization", ADMIN)],
            timeout=10,
        )
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.RemoveReferenceRecitation(
                gateway_pb2.RemoveReferenceRecitationRequest(surah=8, ayah=75, reciter="teacher"),
                metadata=[("authorization", ADMIN)],
                timeout=10,
            )
        assert gone.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not (Path(app.recitations.store.root) / "008" / "075" / "teacher.wav").exists()
    with pytest.raises(InvalidArgument, match="no reference recitation is registered for 8:75"):
        await app.assess(request, USER)


@pytest.mark.slow
async def test_a_recording_of_several_ayahs_is_cut_into_ayahs(
    gateway: tuple[MeshServer, GatewayApp], redis_instance: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Al-Fatiha 1-7 in one 27 s recording, streamed to the asr (the unary limit lowered to 10 s so
    the streaming path runs): seven ayahs stored, each analysed into its own entry."""
    from services.gateway.reference import recitations as recitations_mod

    monkeypatch.setattr(recitations_mod, "UNARY_AUDIO_LIMIT_S", 10.0)
    _, app = gateway
    assert app.recitations is not None
    recording = decode_bytes((AUDIO_DIR / "fatiha_long_track.wav").read_bytes(), name_hint="fatiha")
    version = await app.assessor.versions.current()
    added = await app.recitations.add(
        recording.samples, surah=1, ayah=1, last_ayah=7, reciter="qari", make_default=False, model_version=version
    )
    assert [a.ayah for a in added] == [1, 2, 3, 4, 5, 6, 7]
    # Cut at midpoints, each piece keeping EDGE_S around its words: no audio is lost, pieces may overlap.
    assert all(a.duration_s > 0 for a in added)
    assert sum(a.duration_s for a in added) >= recording.duration_s - 0.05
    client = redis.Redis.from_url(redis_instance.url)
    for a in added:
        entry = decode_entry(client.get(f"{version}:1:{a.ayah}") or b"")
        assert [r.reciter for r in entry.recitations] == ["qari"]
        assert entry.reference.target.ayah.ayah == a.ayah
