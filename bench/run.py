"""`make bench`: every benchmark section, written to docs/benchmarks.md.

    python -m bench.run                           # everything (tens of minutes on 2 cores)
    python -m bench.run --only latency,peer       # some sections; the file keeps the others
    python -m bench.run --runs 20                 # runs per figure (default 10)
    python -m bench.run --quick                   # smoke check: tiny checkpoint, 1 run, to a temp file

Sections: latency (per stage, in process and through the mesh, with memory per process), peer
(quran-muaalem 0.2.2 side by side), throughput (1/4/16 clients, batching off and on), live
(AssessLive at real time: pause to verdict for 3-20 s stretches, one session and at the measured
capacity, half-close to final), streaming (TranscribeLive's windows against the whole segment on the
demo checkpoint, and its cost on the run's checkpoint), asr-memory (peak RSS of torch fp32 against auto),
cpu-options (ONNX Runtime, OpenVINO and INT8 against torch fp32), openvino-shapes (dynamic shapes
against length buckets), profile (where a forward pass spends its time), gpu (FP16, VRAM; needs CUDA),
alignment, tajweed and prosody (the stage engineers' own benchmarks). The targets table follows from latency and
peer. Before measuring, the run waits (up to --max-wait-s) for the machine's load average to
fall under --quiet-load, and records it either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import (
    backend_memory,
    cpu_options,
    gpu,
    latency,
    live,
    peer_compare,
    report,
    scripts,
    streaming_agreement,
    targets,
    throughput,
)
from bench.common import ROOT, Machine, command_line, load_average, now_utc, table, wait_for_quiet
from bench.context import Context, Section
from bench.models import BACKENDS, Assets, for_this_cpu, log, prepare

SECTIONS: dict[str, Callable[[Context], Awaitable[list[Section]]]] = {
    "latency": latency.run,
    "peer": peer_compare.run,
    "throughput": throughput.run,
    "live": live.run,
    "streaming": streaming_agreement.run,
    "asr-memory": backend_memory.run,
    # Before cpu-options: its engines leave the benchmark process holding their memory, and the
    # three compiled models of this one beside that ran the 24 GiB machine out of memory.
    "openvino-shapes": scripts.openvino_shapes,
    "cpu-options": cpu_options.run,
    "profile": scripts.profile,
    "gpu": gpu.run,
    "alignment": scripts.alignment,
    "tajweed": scripts.tajweed,
    "prosody": scripts.prosody,
}
# --quick: what a smoke check needs, small enough for a test.
QUICK = {
    "size": "tiny",
    "runs": 1,
    "durations": "5",
    "latency_backends": "torch-fp32",
    "peer_backends": "torch-fp32",
    "peer_durations": "5",
    "peer_dtypes": "float32",
    "throughput_backend": "torch-fp32",
    "throughput_durations": "5",
    "concurrency": "1,4",
    "requests": 4,
    "max_batch_size": 4,
    "cpu_backends": "torch-fp32,torch-int8",
    "agreement_recitations": 2,
    "alignment_runs": 3,
    "alignment_long_runs": 1,
    "tajweed_trials": 5,
    "gpu_requests": 8,
    "live_segments": "3",
    "live_speech_s": 12.0,  # the final aligns 1:1-7 (242 phonemes): at least 11 s of audio
    "live_capacity": 2,
    "live_backend": "torch-fp32",
    "streaming_clips": 2,
    "streaming_settings": "3,2,1",
    "streaming_full_s": 5.0,
    "streaming_full_runs": 1,
    "quiet_load": 0.0,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--only", default="", help=f"comma-separated sections to run (default all: {', '.join(SECTIONS)})")
    add("--skip", default="", help="comma-separated sections not to run")
    add("--quick", action="store_true", help="smoke check: tiny checkpoint, 1 run, small sizes, temp output")
    add("--runs", type=int, default=10, help="timed runs per figure")
    add("--out", type=Path, default=None, help="the markdown file (default docs/benchmarks.md)")
    add("--fresh", action="store_true", help="write only this run's sections, dropping the file's others")
    add("--checkpoint", help="a multi_level_ctc checkpoint (e.g. the real weights); default a dev one")
    add("--size", choices=("tiny", "full"), default="full", help="size of the dev checkpoint")
    add("--cache-dir", type=Path, default=None, help="dev checkpoints and ONNX exports (default MUAALEM_CACHE_DIR)")
    add("--durations", default="5,15,30", help="clip lengths (s) of the latency, cpu-options and gpu sections")
    keys = ", ".join(BACKENDS)
    add("--latency-backends", default="onnx-fp32,torch-fp32", help=f"CPU options of the latency section ({keys})")
    add(
        "--peer-backends",
        default="torch-fp32,onnx-fp32,torch-bf16,ov-bf16,onnx-int8,torch-int8,ov-int8-static",
        help="our options beside the peer",
    )
    add("--peer-durations", default="15", help="clip lengths (s) of the peer comparison")
    add("--peer-dtypes", default="default,float32", help="the peer's dtypes: default (its bfloat16), float32")
    add("--throughput-backend", default="onnx-fp32", help="the CPU option of the throughput section")
    add("--throughput-durations", default="5", help="clip lengths (s) of the throughput section")
    add("--concurrency", default="1,4,16", help="concurrent clients of the throughput section")
    add("--live-segments", default="3,5,10,20", help="lengths (s) of the live section's stretches of speech")
    add("--live-speech-s", type=float, default=20.0, help="seconds of speech per live session")
    add("--live-capacity", type=int, default=0, help="live sessions at once (0: measured, floor(0.7 / asr RTF))")
    add("--live-backend", default="auto", help="the asr option of the live section (auto: what make serve runs)")
    add("--streaming-clips", type=int, default=24, help="evaluation-split segments of the streaming section")
    add("--streaming-settings", default=streaming_agreement.DEFAULT_SETTINGS,
        help="W,L,R[,window];... (s) the streaming section compares")
    add("--streaming-default", default="3,2,1", help="W,L,R (s) of the streaming section's run on the checkpoint")
    add("--streaming-full-s", type=float, default=8.0,
        help="clip (s) the streaming section streams on the run's checkpoint (0: not)")
    add("--streaming-full-runs", type=int, default=2, help="runs of that clip, each way")
    add("--requests", type=int, default=32, help="assessments per throughput row (at least one per client)")
    add("--max-batch-size", type=int, default=16, help="the asr's max batch when batching is on")
    add("--cpu-backends",
        default="torch-fp32,onnx-fp32,torch-bf16,ov-fp32,ov-bf16,torch-int8,onnx-int8,onnx-int8-static,"
        "ov-int8,ov-int8-static",
        help="CPU options compared (the first is the reference)")
    add("--agreement-recitations", type=int, default=24,
        help="synthetic recitations the cpu-options section decodes with the demo checkpoint (0: none)")
    add("--gpu-precision", default="auto", help="precision of the gpu section (auto: float16)")
    add("--gpu-batch-sizes", default="1,4,16,32", help="batch sizes of the VRAM table")
    add("--gpu-concurrency", default="1,16,64,256", help="concurrent callers of the GPU throughput table")
    add("--gpu-requests", type=int, default=512, help="requests per GPU throughput row")
    add("--alignment-runs", type=int, default=200, help="bench.alignment_bench --runs")
    add("--alignment-long-runs", type=int, default=20, help="bench.alignment_bench --long-runs")
    add("--tajweed-trials", type=int, default=200, help="bench.tajweed_sweep --trials")
    add("--quiet-load", type=float, default=0.5, help="wait for a 1-min load average below this (0: do not)")
    add("--max-wait-s", type=float, default=900.0, help="longest wait for a quiet machine")
    args = parser.parse_args(argv)
    explicit = {a.lstrip("-").split("=")[0].replace("-", "_") for a in (argv or sys.argv[1:]) if a.startswith("--")}
    if args.quick:
        for key, value in QUICK.items():
            if key not in explicit:
                setattr(args, key, value)
    for key in ("latency_backends", "peer_backends", "cpu_backends"):
        if key not in explicit:
            setattr(args, key, for_this_cpu(getattr(args, key)))
    if args.out is None:
        quick_out = Path(tempfile.gettempdir()) / "muaalem-bench-quick.md"
        args.out = quick_out if args.quick else ROOT / "docs" / "benchmarks.md"
    if args.cache_dir is None:
        args.cache_dir = Path(os.environ.get("MUAALEM_CACHE_DIR") or "~/.cache/muaalem").expanduser()
    return args


def chosen_sections(args: argparse.Namespace) -> list[str]:
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = [s for s in [*only, *skip] if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in only and s not in skip]


def backends_needed(args: argparse.Namespace, sections: list[str]) -> list[str]:
    keys = {
        "latency": args.latency_backends,
        "peer": args.peer_backends,
        "throughput": args.throughput_backend,
        "live": args.live_backend,
        "cpu-options": args.cpu_backends,
        "openvino-shapes": "ov-fp32",
    }
    return sorted({k.strip() for s in sections for k in keys.get(s, "").split(",") if k.strip()})


def machine_section(
    machine: Machine, assets: Assets, sections: list[str], load_before: float, args: argparse.Namespace
) -> Section:
    rows = [
        ["CPU", f"{machine.cpu} ({machine.cores} cores)"],
        ["memory", f"{machine.ram_gib:.1f} GiB"],
        ["GPU", machine.gpu or "none"],
        ["system", machine.system],
        ["Python / torch / onnxruntime", f"{machine.python} / {machine.torch} / {machine.onnxruntime}"],
        ["last run", f"{now_utc()}: `{command_line()}` (sections: {', '.join(sections)})"],
        ["load average when it started", f"{load_before:.2f} (waited for < {args.quiet_load:g})"],
        ["checkpoint", assets.label()],
        ["runs per figure", str(args.runs)],
    ]
    return Section("machine", "The machine", table(["", ""], rows))


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sections = chosen_sections(args)
    cache_dir: Path = args.cache_dir
    from bench.models import backends as resolve_backends

    needed = resolve_backends(",".join(backends_needed(args, sections)))
    assets = await asyncio.to_thread(prepare, args.checkpoint, args.size, cache_dir, needed)
    if args.quiet_load > 0:
        load = await asyncio.to_thread(wait_for_quiet, args.quiet_load, args.max_wait_s)
    else:
        load = load_average()
    machine = Machine.describe()
    produced: list[Section] = [machine_section(machine, assets, sections, load, args)]
    with tempfile.TemporaryDirectory(prefix="muaalem-bench-") as work:
        ctx = Context(args, machine, assets, cache_dir, Path(work))
        for name in sections:
            log(f"section {name} (load average {load_average():.2f})")
            done = await SECTIONS[name](ctx)
            produced += done
            # Written after every section: a long run that fails late keeps what it measured.
            report.write(args.out, produced, fresh=args.fresh)
        target = targets.section(ctx)
        if target is not None:
            produced.append(target)
    report.write(args.out, produced, fresh=args.fresh)
    log(f"wrote {args.out}")
    for section in produced:
        print("\n".join(section.markdown()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
