"""Live sessions (AssessLive) through the whole mesh, streamed at real time.

For each clip: the delay from the end of each segment's audio (when its last sample reached the
gateway) to its word verdicts, as the gateway measures it (`LiveWords.delay_ms`), and where it
went (the asr call and the model's share of it, then reference + alignment + tajweed + fusion of
the stretch). Then N sessions at once, each at real time: every one must end with its final
Assessment, and every segment must get its answer (no event lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from bench.clips import Clip, describe
from bench.common import p50_p95, percentile, table
from bench.context import Context, Section
from bench.models import log
from bench.processes import CHANNEL_OPTIONS, Cluster, base_env, stage_targets
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc

CHUNK_S = 0.1


@dataclass
class SessionResult:
    clip: Clip
    delays_ms: list[float] = field(default_factory=list)
    asr_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    judge_ms: list[float] = field(default_factory=list)
    segments: set[int] = field(default_factory=set)
    answered: set[int] = field(default_factory=set)
    finished: bool = False
    error: str = ""

    @property
    def lost(self) -> int:
        return len(self.segments - self.answered)


def _config(clip: Clip) -> gateway_pb2.AssessLiveRequest:
    request = clip.assess_request()
    config = gateway_pb2.LiveConfig(
        target=request.target,
        moshaf=request.moshaf,
        options=request.options,
        pcm=common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
    )
    return gateway_pb2.AssessLiveRequest(config=config)


async def _requests(clip: Clip) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    yield _config(clip)
    pcm = (np.clip(clip.samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(16000 * CHUNK_S) * 2
    started = time.perf_counter()
    for offset in range(0, len(pcm), step):
        await asyncio.sleep(max(0.0, started + offset / 32000 - time.perf_counter()))
        yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + step])


async def session(stub: gateway_pb2_grpc.GatewayServiceStub, clip: Clip) -> SessionResult:
    result = SessionResult(clip)
    try:
        async for event in stub.AssessLive(_requests(clip), timeout=clip.seconds * 4 + 300):
            kind = event.WhichOneof("kind")
            if kind == "segment":
                result.segments.add(event.segment.index)
            elif kind == "words" and not event.words.revised:
                result.answered.add(event.words.segment_index)
                if event.words.words:
                    timings = {t.stage: t.duration_ms for t in event.words.timings}
                    result.delays_ms.append(event.words.delay_ms)
                    result.asr_ms.append(timings.get("asr", 0.0))
                    result.model_ms.append(timings.get("model", 0.0))
                    result.judge_ms.append(timings.get("judge", 0.0))
            elif kind == "off_target":
                result.answered.add(event.off_target.segment_index)
            elif kind == "prelude":
                result.answered.add(event.prelude.segment_index)
            elif kind == "final":
                result.finished = True
    except grpc.aio.AioRpcError as exc:
        result.error = f"{exc.code().name}: {exc.details()}"
    return result


def _share(part: list[float], whole: list[float]) -> str:
    if not whole or not sum(whole):
        return "-"
    return f"{100 * sum(part) / sum(whole):.0f} %"


async def run(ctx: Context) -> list[Section]:
    clips = ctx.clips(ctx.args.live_durations)
    (backend,) = ctx.backends(ctx.args.live_backend)
    concurrent = int(ctx.args.live_sessions)
    provenance = ctx.provenance()
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    singles: list[SessionResult] = []
    crowd: list[SessionResult] = []
    with Cluster(env, ctx.log_dir / "live") as cluster:
        alignment = cluster.start("alignment", "alignment")
        tajweed = cluster.start("tajweed", "tajweed")
        asr = cluster.start("asr", "asr", backend.env(ctx.assets))
        await asyncio.to_thread(cluster.wait_serving)
        # The bench's sessions all come without a key (one "anonymous" caller): let it hold them all.
        limits = {"MUAALEM_LIVE_MAX_SESSIONS_PER_KEY": str(concurrent), "MUAALEM_LIVE_MAX_SESSIONS": str(concurrent)}
        gateway = cluster.start("gateway", "gateway", {**stage_targets(asr, alignment, tajweed), **limits})
        await asyncio.to_thread(cluster.wait_serving)
        async with grpc.aio.insecure_channel(gateway.address, options=CHANNEL_OPTIONS) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            await session(stub, clips[0])  # warm-up: references, the asr's first batches
            for clip in clips:
                for _ in range(ctx.runs if clip.seconds <= 15 else 1):
                    singles.append(await session(stub, clip))
                delays = [d for s in singles if s.clip is clip for d in s.delays_ms]
                log(f"live {clip.name}: delay p50/p95 {p50_p95(delays)}")
            crowd_clip = clips[min(1, len(clips) - 1)]
            crowd = list(await asyncio.gather(*(session(stub, crowd_clip) for _ in range(concurrent))))
            log(f"live x{concurrent}: {sum(s.finished for s in crowd)} finished")
    provenance.finish()

    rows = []
    for clip in clips:
        mine = [s for s in singles if s.clip is clip]
        delays = [d for s in mine for d in s.delays_ms]
        asr_ms = [d for s in mine for d in s.asr_ms]
        model_ms = [d for s in mine for d in s.model_ms]
        judge_ms = [d for s in mine for d in s.judge_ms]
        rows.append(
            [
                clip.name,
                str(len(mine)),
                str(sum(len(s.segments) for s in mine)),
                p50_p95(delays),
                p50_p95(asr_ms),
                _share(model_ms, delays),
                p50_p95(judge_ms),
                str(sum(s.lost for s in mine)),
            ]
        )
    crowd_delays = [d for s in crowd for d in s.delays_ms]
    errors = sorted({s.error for s in crowd if s.error})
    lines = [
        f"AssessLive through the mesh (separate processes, gRPC on loopback), CPU option {backend.label}, "
        "16 kHz s16le sent in 100 ms chunks at real time. Delay: from the moment the segment's last "
        "sample reached the gateway (the pause that ends it is heard only "
        "`MUAALEM_LIVE_MIN_SILENCE_MS` later) to its `words` event.",
        "",
        *describe(clips),
        "",
        *table(
            [
                "clip",
                "sessions",
                "segments",
                "delay ms p50 / p95",
                "asr call ms p50 / p95",
                "model share of the delay",
                "judge ms p50 / p95",
                "segments without an answer",
            ],
            rows,
        ),
        "",
        f"{concurrent} sessions at once, each streaming the {crowd_clip.name} clip at real time:",
        "",
        *table(
            [
                "sessions",
                "ended with the final Assessment",
                "segments without an answer",
                "delay ms p50 / p95",
                "errors",
            ],
            [
                [
                    str(concurrent),
                    str(sum(s.finished for s in crowd)),
                    str(sum(s.lost for s in crowd)),
                    p50_p95(crowd_delays),
                    "; ".join(errors) or "none",
                ]
            ],
        ),
    ]
    if crowd_delays:
        ctx.results["live_p95_ms"] = percentile(crowd_delays, 95)
    return [Section("live", "Live sessions: delay from a pause to its verdicts", lines, provenance)]
