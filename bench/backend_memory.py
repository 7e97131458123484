"""The asr process's memory with torch fp32 and with the default backend (auto), side by side.

`make serve` and `make demo` run MUAALEM_ASR_BACKEND=auto: its graph is exported into
MUAALEM_CACHE_DIR by the first start and reused by the next ones. Each row is one asr process
(`python -m services.asr`, one after the other, nothing else of the mesh running) that reaches
SERVING and transcribes the clip twice; then its peak resident memory (VmHWM: loading, the
export on a first start, and the forward passes) and its resident memory at the end are read
from /proc.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc

from bench.clips import Clip, describe
from bench.common import table
from bench.context import Context, Section
from bench.models import log
from bench.processes import CHANNEL_OPTIONS, Cluster, base_env, peak_rss_mib
from services.common.pb import asr_pb2, asr_pb2_grpc


@dataclass
class Row:
    label: str
    serving: str  # what the asr reports it runs
    startup_s: float
    transcribe_ms: float
    peak_mib: float
    rss_mib: float


async def _measure(ctx: Context, label: str, overrides: dict[str, str], clip: Clip) -> Row:
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    with Cluster(env, ctx.log_dir / "asr-memory") as cluster:
        asr = cluster.start("asr", label, overrides)
        startup = await asyncio.to_thread(cluster.wait_serving)
        async with grpc.aio.insecure_channel(asr.address, options=CHANNEL_OPTIONS) as channel:
            stub = asr_pb2_grpc.AsrServiceStub(channel)
            version = (await stub.GetModelInfo(asr_pb2.GetModelInfoRequest(), timeout=60)).model_version
            elapsed = []
            for _ in range(2):
                began = time.perf_counter()
                await stub.Transcribe(clip.transcribe_request(), timeout=600)
                elapsed.append((time.perf_counter() - began) * 1000)
        row = Row(
            label,
            f"{version.backend} {version.precision}",
            startup,
            elapsed[-1],
            peak_rss_mib(asr.process.pid),
            asr.rss_mib(),
        )
    log(f"asr-memory {label}: peak {row.peak_mib:.0f} MiB, {row.serving}, start-up {startup:.0f} s")
    return row


def _cells(row: Row) -> list[str]:
    return [
        row.label,
        row.serving,
        f"{row.startup_s:.0f}",
        f"{row.transcribe_ms:.0f}",
        f"{row.peak_mib:.0f}",
        f"{row.rss_mib:.0f}",
    ]


async def run(ctx: Context) -> list[Section]:
    (clip,) = ctx.clips("15")
    provenance = ctx.provenance()
    fresh = ctx.work_dir / "asr-memory-cache"  # auto's own export, as on a first `make serve`
    auto = {"MUAALEM_ASR_BACKEND": "auto", "MUAALEM_ASR_PRECISION": "auto", "MUAALEM_CACHE_DIR": str(fresh)}
    rows = [
        await _measure(ctx, "torch fp32", {"MUAALEM_ASR_BACKEND": "torch", "MUAALEM_ASR_PRECISION": "float32"}, clip),
        await _measure(ctx, "auto, first start (exports the graph)", auto, clip),
        await _measure(ctx, "auto, later starts (graph cached)", auto, clip),
    ]
    provenance.finish()
    lines = [
        f"One asr process at a time on this machine ({ctx.machine.cpu}, {ctx.machine.cores} cores), "
        f"checkpoint {ctx.assets.label()}, the 15 s clip transcribed twice. "
        "`auto` is what `make serve`, `make demo` and the images run (services/asr/hardware.py).",
        "",
        *describe([clip]),
        "",
        *table(
            ["asr", "runs", "start-up s", "transcribe ms (2nd)", "peak RSS MiB (VmHWM)", "RSS at the end MiB"],
            [_cells(r) for r in rows],
        ),
        "",
        "The first start's peak is the export (torch's model and the ONNX graph it writes, in the asr's own "
        "process); later starts read the cached graph. Start-up and transcribe times follow the machine's load "
        "(above); the cpu-options section compares speed.",
    ]
    return [Section("asr-memory", "asr memory: torch fp32 against the default backend (auto)", lines, provenance)]
