"""Throughput of the whole mesh at 1/4/16 concurrent clients, with the asr stage's dynamic
batching off (max batch 1) and on.

Each client sends its assessments one after the other; the row's rate is requests over the
wall time of the whole row. The mean batch size comes from the asr process's own Prometheus
histogram (`muaalem_asr_batch_size`), read before and after the row.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import grpc

from bench import calls
from bench.clips import Clip, describe
from bench.common import p50_p95, table
from bench.context import Context, Section
from bench.models import Backend, log
from bench.processes import CHANNEL_OPTIONS, Cluster, Proc, base_env, metric_value, stage_targets
from services.common.pb import gateway_pb2_grpc


@dataclass(frozen=True)
class Row:
    batching: str
    clip: Clip
    callers: int
    requests: int
    wall_s: float
    latencies_ms: list[float]
    mean_batch: float
    degraded: int

    def cells(self) -> list[str]:
        rate = self.requests / self.wall_s
        return [
            self.batching,
            self.clip.name,
            str(self.callers),
            str(self.requests),
            f"{rate:.2f}",
            f"{rate * self.clip.seconds:.1f}",
            p50_p95(self.latencies_ms),
            f"{self.mean_batch:.2f}" if not math.isnan(self.mean_batch) else "-",
            str(self.degraded),
        ]


def _batches(asr: Proc) -> tuple[float, float]:
    text = asr.metrics()
    labels = {"queue": "asr"}
    return metric_value(text, "muaalem_asr_batch_size_sum", labels), metric_value(
        text, "muaalem_asr_batch_size_count", labels
    )


async def _row(label: str, gateway: Proc, asr: Proc, clip: Clip, callers: int, requests: int) -> Row:
    per_caller = max(1, math.ceil(requests / callers))
    latencies: list[float] = []
    degraded = 0
    request = clip.assess_request()
    async with grpc.aio.insecure_channel(gateway.address, options=CHANNEL_OPTIONS) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        await calls.assess(stub, request)  # warm-up: the reference cache, this clip's first call

        async def client() -> None:
            nonlocal degraded
            for _ in range(per_caller):
                sample = await calls.assess(stub, request)
                latencies.append(sample.wall_ms)
                degraded += bool(sample.degraded)

        before = await asyncio.to_thread(_batches, asr)
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(callers)))
        wall = time.perf_counter() - started
        after = await asyncio.to_thread(_batches, asr)
    count = after[1] - before[1]
    mean_batch = (after[0] - before[0]) / count if count else float("nan")
    return Row(label, clip, callers, per_caller * callers, wall, latencies, mean_batch, degraded)


async def measure(ctx: Context, backend: Backend, clips: list[Clip]) -> list[Row]:
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    concurrency = [int(x) for x in ctx.args.concurrency.split(",") if x.strip()]
    modes = [("off (max batch 1)", 1), (f"on (max batch {ctx.args.max_batch_size})", ctx.args.max_batch_size)]
    rows = []
    with Cluster(env, ctx.log_dir / "throughput") as cluster:
        alignment = cluster.start("alignment", "alignment")
        tajweed = cluster.start("tajweed", "tajweed")
        for label, max_batch in modes:
            overrides = {**backend.env(ctx.assets), "MUAALEM_ASR_MAX_BATCH_SIZE": str(max_batch)}
            asr = cluster.start("asr", f"asr batch {max_batch}", overrides)
            await asyncio.to_thread(cluster.wait_serving)
            gateway = cluster.start("gateway", f"gateway batch {max_batch}", stage_targets(asr, alignment, tajweed))
            await asyncio.to_thread(cluster.wait_serving)
            for clip in clips:
                for callers in concurrency:
                    row = await _row(label, gateway, asr, clip, callers, max(ctx.args.requests, callers))
                    log(f"throughput {label} {clip.name} x{callers}: {row.requests / row.wall_s:.2f} requests/s")
                    rows.append(row)
            cluster.stop([gateway, asr])
    return rows


async def run(ctx: Context) -> list[Section]:
    clips = ctx.clips(ctx.args.throughput_durations)
    (backend,) = ctx.backends(ctx.args.throughput_backend)
    provenance = ctx.provenance()
    rows = await measure(ctx, backend, clips)
    provenance.finish()
    lines = [
        f"The whole mesh (Assess through the gateway), CPU option {backend.label}; "
        f"`MUAALEM_ASR_MAX_QUEUE_DELAY_MS` at its default (0: a lone input runs at once, inputs "
        "that arrive while the model is busy are batched together). Latency is the client's round trip.",
        "",
        *describe(clips),
        "",
        *table(
            [
                "batching",
                "clip",
                "clients",
                "requests",
                "clips/s",
                "audio s/s",
                "latency ms p50 / p95",
                "mean batch",
                "degraded",
            ],
            [row.cells() for row in rows],
        ),
    ]
    return [Section("throughput", "Throughput: concurrent clients, batching off and on", lines, provenance)]
