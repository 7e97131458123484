"""ASR stage benchmark: per-stage latency for 5/15/30 s clips, and throughput with batching on/off.

Runs the real serving path (AsrEngine: features, dynamic batcher, model, stitching, greedy
decode) and, with --grpc, a real `python -m services.asr` server process on loopback with
clients in this process. The weights are a random full-size dev checkpoint unless --checkpoint
names real ones (speed does not depend on the weights; decode time a little, through the
number of tokens). Audio is real recitation from ../shared/audio, cut or repeated to length.

    .venv/bin/python -m bench.asr_bench                         # full size, CPU or CUDA
    .venv/bin/python -m bench.asr_bench --size tiny --runs 3    # a quick check of the script
    .venv/bin/python -m bench.asr_bench --grpc --precision bfloat16

`make bench` (bench/run.py) measures the same stages inside whole assessments; this script is
the asr stage alone, for work on the asr service.

Prints markdown tables: the machine and date; latency per clip (one caller, batching off):
features, queue, model, decode and total p50/p95 over --runs; throughput at 1/4/16 concurrent
callers with batching on and off (engine, and gRPC with --grpc); on CUDA, the forward pass's
latency and peak VRAM per clip length and batch size at the engine's precision (FP16 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.clips import clip
from bench.common import ROOT, Machine, now_utc, p50_p95, percentile
from bench.gpu import vram_table
from bench.latency import SEED_BUDGET_MS as SEED_TARGETS_MS
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine, ensure_dev_checkpoint

RATE = 16_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="multi_level_ctc checkpoint (directory or hub id); default: a dev one")
    parser.add_argument("--size", choices=("tiny", "full"), default="full", help="dev checkpoint size")
    parser.add_argument(
        "--cache-dir", default=os.path.expanduser("~/.cache/muaalem"), help="where dev checkpoints live"
    )
    parser.add_argument("--durations", default="5,15,30", help="clip lengths in seconds")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per clip length")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrent callers for the throughput tables")
    parser.add_argument(
        "--requests", type=int, default=32, help="requests per throughput row (at least one per caller)"
    )
    parser.add_argument("--throughput-durations", default="5", help="clip lengths for the throughput tables")
    parser.add_argument("--max-batch-size", type=int, default=16, help="batch size limit when batching is on")
    parser.add_argument("--max-queue-delay-ms", type=float, default=10.0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--precision", default="auto", help="auto, float32, bfloat16, float16, int8")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--onnx-path", default="", help="the exported model for --backend onnxruntime")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--gpu-batch-sizes", default="1,4,16", help="batch sizes of the CUDA VRAM table")
    parser.add_argument("--grpc", action="store_true", help="also measure throughput through a gRPC server process")
    parser.add_argument("--no-throughput", action="store_true", help="latency tables only")
    return parser.parse_args(argv)


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def recitation(seconds: float) -> np.ndarray:
    """The benchmark's real recitation of that length, 16 kHz mono float32."""
    return np.asarray(clip(seconds).samples)


def checkpoint(args: argparse.Namespace) -> str:
    if args.checkpoint:
        return str(args.checkpoint)
    target = Path(args.cache_dir) / "dev-checkpoints" / f"multi_level_ctc-{args.size}"
    return str(ensure_dev_checkpoint(target, "multi_level_ctc", args.size))


def environment(args: argparse.Namespace, model: str, max_batch: int) -> dict[str, str]:
    return {
        "MUAALEM_ASR_MODEL": model,
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_ASR_DEVICE": args.device,
        "MUAALEM_ASR_PRECISION": args.precision,
        "MUAALEM_ASR_BACKEND": args.backend,
        "MUAALEM_ASR_ONNX_PATH": args.onnx_path,
        "MUAALEM_ASR_TORCH_THREADS": str(args.threads),
        "MUAALEM_ASR_MAX_BATCH_SIZE": str(max_batch),
        "MUAALEM_ASR_MAX_QUEUE_DELAY_MS": str(args.max_queue_delay_ms),
        "MUAALEM_ASR_MAX_QUEUE_SIZE": "256",
    }


def machine(engine: AsrEngine) -> list[str]:
    version = engine.version
    info = engine.model_info()
    return [
        f"- date: {now_utc()}",
        f"- machine: {Machine.describe().line()}",
        f"- model: {version.name} ({info.parameters:,} parameters, weights {version.weights_digest}"
        f"{', random dev weights' if version.dev_weights else ''}), backend {version.backend}, "
        f"precision {version.precision}, device {version.device}",
    ]


async def latency_table(engine: AsrEngine, durations: list[float], runs: int) -> list[str]:
    rows = [
        "| clip | frames | features ms | queue ms | model ms | ctc_decode ms | total ms | real-time factor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seconds in durations:
        clip = recitation(seconds)
        await engine.transcribe(clip)  # warm-up: allocator, kernels, caches
        stages: dict[str, list[float]] = {}
        frames = 0
        for _ in range(runs):
            result = await engine.transcribe(clip)
            frames = result.num_frames
            for stage, ms in result.timings:
                stages.setdefault(stage, []).append(ms)
        total = stages["total"]
        target = SEED_TARGETS_MS.get(seconds)
        note = f" (seed target {target:.0f} ms)" if target and engine.version.device.startswith("cuda") else ""
        rows.append(
            f"| {seconds:g} s | {frames} | {p50_p95(stages['features'])} | {p50_p95(stages['queue'])} | "
            f"{p50_p95(stages['model'])} | {p50_p95(stages['ctc_decode'])} | {p50_p95(total)}{note} | "
            f"{percentile(total, 50) / 1000 / seconds:.3f} |"
        )
    return rows


@dataclass(frozen=True)
class Throughput:
    requests: int
    wall_s: float
    latencies_ms: list[float]
    batch_sizes: list[int]

    def row(self, label: str, callers: int, seconds: float) -> str:
        rate = self.requests / self.wall_s
        mean_batch = f"{statistics.fmean(self.batch_sizes):.1f}" if self.batch_sizes else "-"
        return (
            f"| {label} | {seconds:g} s | {callers} | {rate:.2f} | {rate * seconds:.1f} | "
            f"{p50_p95(self.latencies_ms)} | {mean_batch} |"
        )


THROUGHPUT_HEADER = [
    "| batching | clip | callers | requests/s | audio s/s | latency ms p50 / p95 | mean batch |",
    "|---|---|---|---|---|---|---|",
]


async def engine_throughput(engine: AsrEngine, clip: np.ndarray, callers: int, requests: int) -> Throughput:
    per_caller = max(1, math.ceil(requests / callers))
    latencies: list[float] = []
    batches: list[int] = []

    async def caller() -> None:
        for _ in range(per_caller):
            started = time.perf_counter()
            result = await engine.transcribe(clip)
            latencies.append((time.perf_counter() - started) * 1000)
            batches.append(result.batch_size)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Throughput(per_caller * callers, time.perf_counter() - started, latencies, batches)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def grpc_server(env: dict[str, str]) -> AsyncIterator[str]:
    """A `python -m services.asr` process on a free loopback port, SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "MUAALEM_ASR_HOST": "127.0.0.1",
        "MUAALEM_ASR_PORT": str(port),
        "MUAALEM_ASR_METRICS_PORT": "-1",
        "MUAALEM_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.asr", env=full_env, cwd=ROOT)
    address = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 600
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the ASR server exited with status {process.returncode}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the ASR server did not become SERVING within 600 s")
                await asyncio.sleep(0.5)
        yield address
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def grpc_throughput(address: str, clip: np.ndarray, callers: int, requests: int) -> Throughput:
    import grpc

    from services.common.pb import asr_pb2, asr_pb2_grpc, common_pb2

    pcm = common_pb2.RawPcm(
        data=(np.clip(clip, -1, 1) * 32767).astype("<i2").tobytes(),
        sample_rate_hz=RATE,
        channels=1,
        encoding=common_pb2.PCM_ENCODING_S16LE,
    )
    request = asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=pcm))
    per_caller = max(1, math.ceil(requests / callers))
    latencies: list[float] = []
    batches: list[int] = []
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        await stub.Transcribe(request)  # warm-up

        async def caller() -> None:
            for _ in range(per_caller):
                started = time.perf_counter()
                reply = await stub.Transcribe(request)
                latencies.append((time.perf_counter() - started) * 1000)
                batches.append(reply.transcription.batch_size)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
    return Throughput(per_caller * callers, time.perf_counter() - started, latencies, batches)


async def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    model = checkpoint(args)
    durations = floats(args.durations)
    out: list[str] = ["# ASR benchmark", ""]

    single = AsrEngine(AsrConfig.from_env(environment(args, model, 1)))
    await single.start()
    try:
        out += machine(single)
        out += ["", f"## Latency per clip: one caller, batching off, {args.runs} runs (p50 / p95)", ""]
        out += await latency_table(single, durations, args.runs)
        if single.version.device.startswith("cuda"):
            out += ["", "## GPU: forward pass and peak VRAM per clip length and batch size", ""]
            out += vram_table(single, [clip(d) for d in durations], ints(args.gpu_batch_sizes), args.runs)
    finally:
        await single.close()
    print("\n".join(out), flush=True)
    if args.no_throughput:
        return

    callers = ints(args.concurrency)
    lengths = floats(args.throughput_durations)
    modes = [("off (max batch 1)", 1), (f"on (max batch {args.max_batch_size})", args.max_batch_size)]
    table = ["", f"## Throughput through the engine ({args.requests} requests per row)", "", *THROUGHPUT_HEADER]
    for label, max_batch in modes:
        engine = AsrEngine(AsrConfig.from_env(environment(args, model, max_batch)))
        await engine.start()
        try:
            for seconds in lengths:
                clip = recitation(seconds)
                await engine.transcribe(clip)
                for count in callers:
                    result = await engine_throughput(engine, clip, count, max(args.requests, count))
                    table.append(result.row(label, count, seconds))
        finally:
            await engine.close()
    print("\n".join(table), flush=True)
    if not args.grpc:
        return
    table = [
        "",
        f"## Throughput through gRPC (server process, {args.requests} requests per row)",
        "",
        *THROUGHPUT_HEADER,
    ]
    for label, max_batch in modes:
        async with grpc_server(environment(args, model, max_batch)) as address:
            for seconds in lengths:
                clip = recitation(seconds)
                for count in callers:
                    result = await grpc_throughput(address, clip, count, max(args.requests, count))
                    table.append(result.row(label, count, seconds))
    print("\n".join(table), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
