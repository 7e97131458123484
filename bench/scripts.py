"""Benchmarks that run as scripts of their own (bench/alignment_bench.py, bench/tajweed_sweep.py,
bench/prosody_bench.py, bench/openvino_shapes.py), run as they are and their markdown kept as a
section."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bench.common import ROOT
from bench.context import Context, Section
from bench.models import log, native_bf16


def _run_module(module: str, args: list[str]) -> list[str]:
    command = [sys.executable, "-m", module, *args]
    log(" ".join(command[1:]))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        failed = f"**`{' '.join(command[1:])}` failed (exit {done.returncode}):**"
        return [failed, "", "```", done.stderr[-3000:], "```"]
    # The scripts print markdown headings of their own: demote them under this section's.
    lines = []
    for line in done.stdout.rstrip("\n").splitlines():
        lines.append("#" * 2 + line if line.startswith("#") else line)
    return lines


async def alignment(ctx: Context) -> list[Section]:
    provenance = ctx.provenance()
    args = ["--runs", str(ctx.args.alignment_runs), "--long-runs", str(ctx.args.alignment_long_runs)]
    lines = await asyncio.to_thread(_run_module, "bench.alignment_bench", args)
    provenance.finish()
    intro = [
        "The alignment service's own benchmark (`python -m bench.alignment_bench`): real references, "
        "synthetic peaky log-probs (no real weights here), including 10 minutes of audio.",
        "",
    ]
    return [Section("alignment", "Alignment alone", intro + lines, provenance)]


async def tajweed(ctx: Context) -> list[Section]:
    provenance = ctx.provenance()
    lines = await asyncio.to_thread(_run_module, "bench.tajweed_sweep", ["--trials", str(ctx.args.tajweed_trials)])
    provenance.finish()
    intro = [
        "The tajweed service's confusion sweep (`python -m bench.tajweed_sweep`): quality of the "
        "verdicts on synthetic recitations with known truth, not speed.",
        "",
    ]
    return [Section("tajweed", "Tajweed verdicts on a synthetic sweep", intro + lines, provenance)]


async def prosody(ctx: Context) -> list[Section]:
    provenance = ctx.provenance()
    args = ["--runs", str(ctx.runs), "--durations", str(ctx.args.durations)]
    lines = await asyncio.to_thread(_run_module, "bench.prosody_bench", args)
    durations = ",".join(d for d in str(ctx.args.durations).split(",") if float(d) >= 10) or "10"
    assess_args = ["--runs", str(ctx.runs), "--durations", durations, "--checkpoint", str(ctx.assets.checkpoint)]
    lines += ["", *await asyncio.to_thread(_run_module, "bench.prosody_assess", assess_args)]
    provenance.finish()
    intro = [
        "The prosody stage (`python -m bench.prosody_bench`): each feature of Analyze on real recitation, "
        "the Analyze and Compare servicers in process; a comparison reads the reference's features from "
        "protobuf, as a cached reference recitation is read. Then Assess with and without compare_to "
        "(`python -m bench.prosody_assess`: the gateway in local mode with this run's checkpoint, every stage "
        "in one process on the same cores, so the prosody stage competes with the asr for CPU).",
        "",
    ]
    return [Section("prosody", "Prosody and the comparison", intro + lines, provenance)]


async def openvino_shapes(ctx: Context) -> list[Section]:
    provenance = ctx.provenance()
    clips = "2" if ctx.args.quick else "8"
    precision = "bfloat16" if native_bf16() else "float32"
    args = [str(ctx.assets.onnx["fp32"]), str(ctx.assets.checkpoint), "--precision", precision, "--clips", clips]
    lines = await asyncio.to_thread(_run_module, "bench.openvino_shapes", args)
    provenance.finish()
    intro = [
        "Why the openvino backend keeps shapes dynamic (`MUAALEM_ASR_OPENVINO_BUCKET_FRAMES=0`): "
        f"`python -m bench.openvino_shapes` compiles the exported graph once per setting and runs {clips} "
        "clips of distinct lengths (3-8 s, each length new to the plugin, as in serving), interleaved "
        f"across settings, in {precision} (what `auto` serves on this CPU). A bucket pads the frame "
        "axis up to a multiple of its width (masked frames): fewer distinct shapes, more frames to compute.",
        "",
    ]
    return [Section("openvino-shapes", "OpenVINO: dynamic shapes or length buckets", intro + lines, provenance)]


async def profile(ctx: Context) -> list[Section]:
    provenance = ctx.provenance()
    seconds = "5" if ctx.args.quick else "15"
    precision = "bfloat16" if native_bf16() else "float32"
    args = [str(ctx.assets.checkpoint), "--seconds", seconds, "--precision", precision]
    lines = await asyncio.to_thread(_run_module, "bench.forward_profile", args)
    provenance.finish()
    intro = [
        "Where the time goes (`python -m bench.forward_profile`): torch's profiler on one forward pass "
        f"of the model at the precision `auto` serves on this CPU ({precision}). The model is the whole "
        "of an assessment's time on a CPU (see the latency section), so this is where a faster CPU path "
        "has to win.",
        "",
    ]
    return [Section("profile", "Where a forward pass spends its time", intro + lines, provenance)]
