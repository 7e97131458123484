"""Benchmarks that run as scripts of their own (bench/alignment_bench.py, bench/tajweed_sweep.py,
bench/prosody_bench.py, bench/openvino_shapes.py), run as they are and their markdown kept as a
section."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from bench.common import ROOT
from bench.context import Context, Section
from bench.models import log
from services.asr.hardware import choose_precision


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


async def _section(
    ctx: Context, key: str, title: str, intro: list[str], runs: list[tuple[str, list[str]]]
) -> list[Section]:
    """One section from script runs (their outputs one after the other), under `intro`."""
    provenance = ctx.provenance()
    lines: list[str] = []
    for module, args in runs:
        if lines:
            lines.append("")
        lines += await asyncio.to_thread(_run_module, module, args)
    provenance.finish()
    return [Section(key, title, [*intro, "", *lines], provenance)]


def _cpu_precision() -> str:
    """The precision the asr's `auto` serves on this machine's CPU."""
    return choose_precision("auto", "cpu").precision


async def alignment(ctx: Context) -> list[Section]:
    args = ["--runs", str(ctx.args.alignment_runs), "--long-runs", str(ctx.args.alignment_long_runs)]
    intro = [
        "The alignment service's own benchmark (`python -m bench.alignment_bench`): real references, "
        "synthetic peaky log-probs (no real weights here), including 10 minutes of audio.",
    ]
    return await _section(ctx, "alignment", "Alignment alone", intro, [("bench.alignment_bench", args)])


async def tajweed(ctx: Context) -> list[Section]:
    intro = [
        "The tajweed service's confusion sweep (`python -m bench.tajweed_sweep`): quality of the "
        "verdicts on synthetic recitations with known truth, not speed.",
    ]
    runs = [("bench.tajweed_sweep", ["--trials", str(ctx.args.tajweed_trials)])]
    return await _section(ctx, "tajweed", "Tajweed verdicts on a synthetic sweep", intro, runs)


async def prosody(ctx: Context) -> list[Section]:
    durations = ",".join(d for d in str(ctx.args.durations).split(",") if float(d) >= 10) or "10"
    runs = [
        ("bench.prosody_bench", ["--runs", str(ctx.runs), "--durations", str(ctx.args.durations)]),
        ("bench.prosody_assess",
         ["--runs", str(ctx.runs), "--durations", durations, "--checkpoint", str(ctx.assets.checkpoint)]),
    ]
    intro = [
        "The prosody stage (`python -m bench.prosody_bench`): each feature of Analyze on real recitation, "
        "the Analyze and Compare servicers in process; a comparison reads the reference's features from "
        "protobuf, as a cached reference recitation is read. Then Assess with and without compare_to "
        "(`python -m bench.prosody_assess`: the gateway in local mode with this run's checkpoint, every stage "
        "in one process on the same cores, so the prosody stage competes with the asr for CPU).",
    ]
    return await _section(ctx, "prosody", "Prosody and the comparison", intro, runs)


async def openvino_shapes(ctx: Context) -> list[Section]:
    clips = "2" if ctx.args.quick else "8"
    precision = _cpu_precision()
    args = [str(ctx.assets.onnx["fp32"]), str(ctx.assets.checkpoint), "--precision", precision, "--clips", clips]
    intro = [
        "Why the openvino backend keeps shapes dynamic (`MUAALEM_ASR_OPENVINO_BUCKET_FRAMES=0`): "
        f"`python -m bench.openvino_shapes` compiles the exported graph once per setting and runs {clips} "
        "clips of distinct lengths (3-8 s, each length new to the plugin, as in serving), interleaved "
        f"across settings, in {precision} (what `auto` serves on this CPU). A bucket pads the frame "
        "axis up to a multiple of its width (masked frames): fewer distinct shapes, more frames to compute.",
    ]
    title = "OpenVINO: dynamic shapes or length buckets"
    return await _section(ctx, "openvino-shapes", title, intro, [("bench.openvino_shapes", args)])


async def profile(ctx: Context) -> list[Section]:
    precision = _cpu_precision()
    seconds = "5" if ctx.args.quick else "15"
    args = [str(ctx.assets.checkpoint), "--seconds", seconds, "--precision", precision]
    intro = [
        "Where the time goes (`python -m bench.forward_profile`): torch's profiler on one forward pass "
        f"of the model at the precision `auto` serves on this CPU ({precision}). The model is the whole "
        "of an assessment's time on a CPU (see the latency section), so this is where a faster CPU path "
        "has to win.",
    ]
    title = "Where a forward pass spends its time"
    return await _section(ctx, "profile", title, intro, [("bench.forward_profile", args)])
