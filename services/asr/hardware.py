"""What `MUAALEM_ASR_PRECISION=auto` becomes on this machine, and why.

On a CPU with native bfloat16 arithmetic (the avx512_bf16 instructions, or AMX tiles) bfloat16
halves the bytes every matrix product moves and runs the products on those units: measured on
an AMD EPYC Zen 5 (avx512_bf16), 15 s of recitation through the full-size dev checkpoint, the
forward pass was 1.58x faster in torch and 2.17x in OpenVINO than torch float32, with the same
argmax on every frame and the same decode. (Random weights: on the tiny random conformance
checkpoint, whose flat log-probs leave near ties, bfloat16 moved a few decoded symbols; a trained
checkpoint is where identity must be confirmed.)
Without them bfloat16 is emulated and slower than float32, so `auto` keeps float32 there. On
CUDA `auto` is float16.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

# The CPU flags (Linux /proc/cpuinfo names) that mean bfloat16 runs natively.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    # One sentence for the log, GetModelInfo and the report: what was asked and why this.
    reason: str


@cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's flags (empty where /proc/cpuinfo is not there, e.g. macOS)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16_flags(flags: frozenset[str] | None = None) -> list[str]:
    """Which of NATIVE_BF16_FLAGS the CPU has (this machine's unless `flags` are given)."""
    have = flags if flags is not None else cpu_flags()
    return [flag for flag in NATIVE_BF16_FLAGS if flag in have]


def choose_precision(requested: str, device: str, flags: frozenset[str] | None = None) -> PrecisionChoice:
    """`requested` as it is when not `auto`; `auto` by the device and the CPU's flags."""
    if requested != "auto":
        return PrecisionChoice(requested, f"MUAALEM_ASR_PRECISION={requested} (set explicitly)")
    if device.startswith("cuda"):
        return PrecisionChoice("float16", "auto: float16 on a CUDA device")
    native = native_bf16_flags(flags)
    if native:
        return PrecisionChoice("bfloat16", f"auto: bfloat16, the CPU has native bfloat16 ({', '.join(native)})")
    flags_named = " or ".join(NATIVE_BF16_FLAGS)
    return PrecisionChoice("float32", f"auto: float32, the CPU has no native bfloat16 ({flags_named})")


def choose_backend(requested: str, device: str, flags: frozenset[str] | None = None) -> str:
    """`requested` as it is when not `auto`; `auto`: torch on CUDA; on a CPU with native bfloat16
    OpenVINO (its bf16 measured 2.2x torch fp32 on a Zen 5 EPYC, decode identical), elsewhere ONNX
    Runtime (in float32 on an AVX2-only EPYC it measured 1.34x torch fp32 against OpenVINO's 1.24x,
    with half OpenVINO's resident memory; docs/benchmarks.md, cpu-options)."""
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "torch"
    return "openvino" if native_bf16_flags(flags) else "onnxruntime"
