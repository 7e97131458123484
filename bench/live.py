"""Live sessions (AssessLive) through the whole mesh at real time: from a pause to its verdicts.

Each session recites stretches of continuous speech of one length (3, 5, 10 or 20 s, cut from
the Fatiha track, which breathes for 0.1-0.2 s only), each followed by 1 s of silence, the pause
that closes its segment. Pause-to-verdict is measured by the client: from the moment it sent a
segment's last sample to the first event that answers the segment (`words`, `off_target` or
`prelude`), so it holds the silence the segmenter must hear (MUAALEM_LIVE_MIN_SILENCE_MS), the
asr call on the whole segment, following, alignment and tajweed. A 20 s stretch is cut at
MUAALEM_LIVE_MAX_SEGMENT_S (12 s) while it is recited; only its last piece ends at a pause.
Then the time from the client's half-close to the final Assessment.

First one session per length, then as many at once as the machine carries: every process of
the mesh runs here, so the capacity is what their CPU time per second of session audio allows,
measured over the single sessions (c CPU-s per audio-s; capacity = floor(0.7 x cores / c), at
least 1, or --live-capacity). The asr's own real-time factor (model time over audio, one call at
a time) is reported beside it: it is the bound where the asr has machines of its own
(docs/live.md, Capacity). The gateway is restarted with MUAALEM_LIVE_CAPACITY_SESSIONS at that
figure, and one session over it must be refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import grpc
import numpy as np

from bench.clips import AUDIO_DIR, MOSHAF
from bench.common import p50_p95, percentile, table
from bench.context import Context, Section
from bench.models import log
from bench.processes import CHANNEL_OPTIONS, Cluster, Proc, base_env, stage_targets
from services.common import audio
from services.common.pb import asr_pb2, asr_pb2_grpc, common_pb2, gateway_pb2, gateway_pb2_grpc

CHUNK_S = 0.1
PAUSE_S = 1.0
RATE = 16000
# The share of the asr's time live sessions may fill: the rest absorbs the finals and bursts.
UTILISATION = 0.7
SOURCE = "fatiha_long_track.wav"
TARGET = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=1, first_ayah=1, last_ayah=7))


@cache
def _speech() -> np.ndarray:
    samples = audio.decode_bytes((AUDIO_DIR / SOURCE).read_bytes(), name_hint=SOURCE, max_duration_s=3600).samples
    return np.asarray(samples, dtype=np.float32)


def recitation(stretch_s: float, speech_s: float) -> tuple[bytes, int]:
    """16 kHz s16le: stretches of `stretch_s` of continuous speech, each then a pause, about
    `speech_s` of speech in all; and how many stretches."""
    speech = _speech()
    count = max(1, round(speech_s / stretch_s))
    length = int(stretch_s * RATE)
    parts = [np.zeros(int(0.5 * RATE), dtype=np.float32)]
    for k in range(count):
        start = (k * length) % max(1, speech.size - length)  # in the order of the recitation
        parts += [speech[start : start + length], np.zeros(int(PAUSE_S * RATE), dtype=np.float32)]
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype("<i2").tobytes()
    return pcm, count


@dataclass
class SessionResult:
    stretch_s: float
    pause_to_verdict_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    segments: int = 0
    closed_by_pause: int = 0
    unanswered: int = 0
    off_target: int = 0  # segments answered `off_target` (after a phonetic search of the whole Quran)
    end_to_final_ms: float = float("nan")
    finished: bool = False
    degraded: bool = False
    error: str = ""


def _config() -> gateway_pb2.AssessLiveRequest:
    return gateway_pb2.AssessLiveRequest(
        config=gateway_pb2.LiveConfig(
            target=TARGET,
            moshaf=common_pb2.MoshafAttributes(**MOSHAF),
            # Random dev weights never decode the passage: without this the rules would be skipped.
            options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
            pcm=common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
        )
    )


async def session(stub: gateway_pb2_grpc.GatewayServiceStub, stretch_s: float, speech_s: float) -> SessionResult:
    pcm, _ = recitation(stretch_s, speech_s)
    result = SessionResult(stretch_s)
    sent: list[tuple[float, float]] = []  # (audio seconds sent so far, wall clock)
    closed_at = 0.0

    async def requests() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        nonlocal closed_at
        yield _config()
        step = int(RATE * CHUNK_S) * 2
        started = time.perf_counter()
        for offset in range(0, len(pcm), step):
            await asyncio.sleep(max(0.0, started + offset / (2 * RATE) - time.perf_counter()))
            yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + step])
            sent.append((min(len(pcm), offset + step) / (2 * RATE), time.perf_counter()))
        closed_at = time.perf_counter()

    def sent_at(seconds: float) -> float:
        return next((at for upto, at in sent if upto >= seconds - 1e-6), sent[-1][1])

    ends: dict[int, tuple[float, float, bool]] = {}  # segment -> (start_s, end_s, closed by a pause)
    answered: set[int] = set()
    try:
        async for event in stub.AssessLive(requests(), timeout=len(pcm) / (2 * RATE) * 4 + 600):
            now = time.perf_counter()
            kind = event.WhichOneof("kind")
            result.degraded |= bool(event.degraded)
            index = -1
            if kind == "segment":
                span = event.segment.time_span
                ends[event.segment.index] = (span.start_s, span.end_s, event.segment.closed_by_pause)
            elif kind == "words" and not event.words.revised:
                index = event.words.segment_index
                timings = {t.stage: t.duration_ms for t in event.words.timings}
                if "model" in timings:
                    result.model_ms.append(timings["model"])
            elif kind == "off_target":
                index = event.off_target.segment_index
                result.off_target += index not in answered
            elif kind == "prelude":
                index = event.prelude.segment_index
            elif kind == "final":
                result.finished = True
                result.end_to_final_ms = (now - closed_at) * 1000
            if index in ends and index not in answered:
                answered.add(index)
                _, end_s, by_pause = ends[index]
                if by_pause:
                    result.pause_to_verdict_ms.append((now - sent_at(end_s)) * 1000)
    except grpc.aio.AioRpcError as exc:
        result.error = f"{exc.code().name}: {exc.details()}"
    result.segments = len(ends)
    result.closed_by_pause = sum(1 for _, _, by_pause in ends.values() if by_pause)
    result.unanswered = len(set(ends) - answered)
    return result


async def refusal(stub: gateway_pb2_grpc.GatewayServiceStub) -> tuple[float, str]:
    """One session over capacity: the time to its refusal and what it said."""

    async def requests() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        yield _config()

    began = time.perf_counter()
    try:
        async for _ in stub.AssessLive(requests(), timeout=60):
            pass
    except grpc.aio.AioRpcError as exc:
        return (time.perf_counter() - began) * 1000, f"{exc.code().name}: {exc.details()}"
    return (time.perf_counter() - began) * 1000, "admitted (not refused)"


async def real_time_factor(asr: Proc, stretches: list[float]) -> float:
    """The asr's model time over audio time on one stretch of each length, called as a live
    session calls it (unary Transcribe of 16 kHz float32), after a warm-up call."""
    speech = _speech()
    model_ms = audio_ms = 0.0
    async with grpc.aio.insecure_channel(asr.address, options=CHANNEL_OPTIONS) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        for k, stretch in enumerate([stretches[0], *stretches]):
            samples = speech[: int(stretch * RATE)]
            pcm = common_pb2.RawPcm(
                data=samples.tobytes(), sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE
            )
            request = asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=pcm))
            reply = await stub.Transcribe(request, timeout=600)
            if k:
                model_ms += sum(t.duration_ms for t in reply.transcription.timings if t.stage == "model")
                audio_ms += stretch * 1000
    return model_ms / audio_ms if audio_ms else float("nan")


def capacity_for(cpu_per_audio_s: float, cores: int) -> int:
    """Sessions at once whose CPU the machine's cores carry at UTILISATION."""
    if not cpu_per_audio_s > 0:
        return 1
    return max(1, math.floor(UTILISATION * cores / cpu_per_audio_s))


def cpu_seconds(procs: list[Proc]) -> float:
    """User and system CPU time the processes have used so far (Linux /proc)."""
    ticks = 0
    for proc in procs:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{proc.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def _serving(asr: Proc) -> str:
    async with grpc.aio.insecure_channel(asr.address, options=CHANNEL_OPTIONS) as channel:
        info = await asr_pb2_grpc.AsrServiceStub(channel).GetModelInfo(asr_pb2.GetModelInfoRequest(), timeout=60)
    version = info.model_version
    return f"{version.backend} {version.precision} ({version.precision_reason})"


def _row(label: str, stretch_s: float, results: list[SessionResult]) -> list[str]:
    delays = [d for r in results for d in r.pause_to_verdict_ms]
    finals = [r.end_to_final_ms for r in results if r.finished]
    model = [m for r in results for m in r.model_ms]
    errors = sorted({r.error for r in results if r.error})
    return [
        f"{stretch_s:g} s",
        label,
        f"{sum(r.closed_by_pause for r in results)} / {sum(r.segments for r in results)}",
        p50_p95(delays),
        p50_p95(model),
        p50_p95(finals),
        f"{sum(r.finished for r in results)} / {len(results)}",
        str(sum(r.off_target for r in results)),
        str(sum(r.unanswered for r in results)),
        str(sum(r.degraded for r in results)),
        "; ".join(errors) or "none",
    ]


async def run(ctx: Context) -> list[Section]:
    stretches = [float(x) for x in str(ctx.args.live_segments).split(",") if x.strip()]
    speech_s = float(ctx.args.live_speech_s)
    (backend,) = ctx.backends(ctx.args.live_backend)
    provenance = ctx.provenance()
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    singles: dict[float, list[SessionResult]] = {}
    crowds: dict[float, list[SessionResult]] = {}
    refusals: list[tuple[float, str]] = []
    with Cluster(env, ctx.log_dir / "live") as cluster:
        alignment = cluster.start("alignment", "alignment")
        tajweed = cluster.start("tajweed", "tajweed")
        asr = cluster.start("asr", "asr", backend.env(ctx.assets))
        await asyncio.to_thread(cluster.wait_serving)
        serving = await _serving(asr)
        # The bench's sessions all come without a key (one "anonymous" caller): let it hold them all.
        open_limits = {"MUAALEM_LIVE_MAX_SESSIONS_PER_KEY": "64", "MUAALEM_LIVE_MAX_SESSIONS": "64"}
        targets = stage_targets(asr, alignment, tajweed)
        gateway = cluster.start("gateway", "gateway", {**targets, **open_limits})
        await asyncio.to_thread(cluster.wait_serving)
        async with grpc.aio.insecure_channel(gateway.address, options=CHANNEL_OPTIONS) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            await session(stub, stretches[0], stretches[0])  # warm-up: references, the asr's first calls
            mesh = [asr, alignment, tajweed, gateway]
            cpu_before = cpu_seconds(mesh)
            for stretch in stretches:
                singles[stretch] = [await session(stub, stretch, speech_s)]
                log(f"live {stretch:g} s: pause to verdict {p50_p95(singles[stretch][0].pause_to_verdict_ms)}")
            session_audio_s = sum(len(recitation(stretch, speech_s)[0]) / (2 * RATE) for stretch in stretches)
            cpu_per_audio_s = (cpu_seconds(mesh) - cpu_before) / session_audio_s
        rtf = await real_time_factor(asr, stretches)
        capacity = int(ctx.args.live_capacity) or capacity_for(cpu_per_audio_s, ctx.machine.cores)
        log(f"live: {cpu_per_audio_s:.2f} CPU-s per audio-s, asr RTF {rtf:.3f}: capacity {capacity}")
        cluster.stop([gateway])
        limited = {**open_limits, "MUAALEM_LIVE_CAPACITY_SESSIONS": str(capacity)}
        gateway = cluster.start("gateway", "gateway (at capacity)", {**targets, **limited})
        await asyncio.to_thread(cluster.wait_serving)
        async with grpc.aio.insecure_channel(gateway.address, options=CHANNEL_OPTIONS) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            for stretch in stretches:
                running = [asyncio.create_task(session(stub, stretch, speech_s)) for _ in range(capacity)]
                await asyncio.sleep(2.0)  # every one admitted and streaming
                refusals.append(await refusal(stub))
                crowds[stretch] = list(await asyncio.gather(*running))
                delays = [d for r in crowds[stretch] for d in r.pause_to_verdict_ms]
                log(f"live {stretch:g} s x{capacity}: pause to verdict {p50_p95(delays)}")
    provenance.finish()

    rows = []
    for stretch in stretches:
        rows.append(_row("1", stretch, singles[stretch]))
        rows.append(_row(f"{capacity} (capacity)", stretch, crowds[stretch]))
    refusal_ms = [ms for ms, _ in refusals]
    said = sorted({what for _, what in refusals})
    lines = [
        f"AssessLive through the mesh (separate processes, gRPC on loopback), asr option {backend.label}: it "
        f"serves {serving}. 16 kHz s16le sent in 100 ms chunks at real time; about {speech_s:g} s of speech per "
        f"session, in stretches of one length cut from {SOURCE}, each followed by {PAUSE_S:g} s of silence.",
        "",
        "Pause to verdict: from the moment the client sent a segment's last sample to the event that answers it "
        "(the segmenter's silence included); segments closed by a pause only (a 20 s stretch is cut at 12 s while "
        "it is recited). Final: from the client's half-close to the final Assessment. asr model: the model's "
        "time in the segment's asr call(s). A segment that does not match the passage near the position is "
        "answered `off_target` after a search of the whole Quran for what it was, which a model that does not "
        "hear the recording (random weights; the demo model on a human reciter) makes common: the passage "
        "index when the gateway holds it (MUAALEM_LOCATE_WARM; under 20 ms), quran-transcript's phonetic "
        "search otherwise (up to 10 s on some noisy decodes, more than the model takes).",
        "",
        *table(
            [
                "stretch",
                "sessions",
                "segments at a pause / all",
                "pause to verdict ms p50 / p95",
                "asr model ms p50 / p95",
                "half-close to final ms p50 / p95",
                "final Assessments",
                "answered off target",
                "segments without an answer",
                "sessions degraded",
                "errors",
            ],
            rows,
        ),
        "",
        f"Capacity: one session at a time, the mesh's processes (all on this machine) used {cpu_per_audio_s:.2f} "
        f"CPU-s per second of session audio, so {ctx.machine.cores} cores carry {capacity} session(s) at once "
        + (
            f"(floor({UTILISATION:g} x cores / that), at least 1)."
            if not int(ctx.args.live_capacity)
            else "(set with --live-capacity)."
        )
        + f" The asr alone, one stretch of each length at a time: real-time factor {rtf:.3f} (model time over "
        f"audio), the bound of an asr replica with machines of its own: floor({UTILISATION:g} / RTF) = "
        f"{max(1, math.floor(UTILISATION / rtf)) if rtf > 0 else '-'} sessions.",
        f"One session more than that, opened while they ran, was refused after {p50_p95(refusal_ms)} ms "
        f"(p50 / p95 of {len(refusal_ms)}): {'; '.join(said)}.",
    ]
    at_capacity = [d for results in crowds.values() for r in results for d in r.pause_to_verdict_ms]
    ctx.results["live_p95_ms"] = percentile(at_capacity, 95)
    title = "Live sessions: from a pause to its verdicts, one session and at capacity"
    return [Section("live", title, lines, provenance)]
