"""What every benchmark section shares: the machine's description, percentiles, markdown tables,
and the provenance line (date, command, load) that goes with every figure."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 10 runs is the slowest run): no interpolation between
    runs that did not happen."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def p50(values: Sequence[float]) -> float:
    return percentile(values, 50)


def p95(values: Sequence[float]) -> float:
    return percentile(values, 95)


def median_ms(action: Callable[[], object], repeats: int) -> float:
    """The median wall time of `repeats` calls of `action`, in ms."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def p50_p95(values: Sequence[float]) -> str:
    """`p50 / p95` in ms, `-` when there are no values."""
    if not values:
        return "-"
    return f"{fmt_ms(p50(values))} / {fmt_ms(p95(values))}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def load_average() -> float:
    """The 1-minute load average (the machine is shared: every section records it)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def wait_for_quiet(threshold: float, max_wait_s: float) -> float:
    """Waits (up to max_wait_s) until the 1-minute load average is under `threshold`; returns it."""
    deadline = time.monotonic() + max_wait_s
    load = load_average()
    while load >= threshold and time.monotonic() < deadline:
        print(f"  waiting for a quiet machine: load average {load:.2f} >= {threshold}", file=sys.stderr, flush=True)
        time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))
        load = load_average()
    return load


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def vector_features() -> str:
    """The instruction sets the CPU options' speed turns on (machines of the same model name
    differ: one EPYC here had AVX-512 with bfloat16, another AVX2 only)."""
    from services.asr.hardware import cpu_flags

    flags = cpu_flags()
    named = [
        ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""),
        "AVX512-BF16" if "avx512_bf16" in flags else "",
        "AMX" if "amx_tile" in flags else "",
        "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "",
    ]
    return ", ".join(n for n in named if n) or "no AVX2"


def memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def gpu_name() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    system: str
    python: str
    torch: str
    onnxruntime: str
    gpu: str | None

    @classmethod
    def describe(cls) -> Machine:
        return cls(
            cpu=f"{cpu_model()} ({vector_features()})",
            cores=os.cpu_count() or 0,
            ram_gib=memory_gib(),
            system=f"{platform.system()} {platform.release()}",
            python=platform.python_version(),
            torch=_version("torch"),
            onnxruntime=_version("onnxruntime"),
            gpu=gpu_name(),
        )

    def line(self) -> str:
        gpu = f"GPU {self.gpu}" if self.gpu else "no GPU"
        return (
            f"{self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM, {gpu}; {self.system}, "
            f"Python {self.python}, torch {self.torch}, onnxruntime {self.onnxruntime}"
        )


def command_line() -> str:
    """How this run was started, as a command someone can paste."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"python -m bench.run {args}".strip()


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Provenance:
    """Who made a section's figures: machine, date, command, load before and after."""

    machine: Machine
    command: str
    started: str = field(default_factory=now_utc)
    load_before: float = field(default_factory=load_average)
    load_after: float = float("nan")
    wall_s: float = 0.0
    _t0: float = field(default_factory=time.monotonic)

    def finish(self) -> None:
        self.load_after = load_average()
        self.wall_s = time.monotonic() - self._t0

    def line(self) -> str:
        return (
            f"_Measured {self.started} by `{self.command}` on {self.machine.line()}; "
            f"1-min load average {self.load_before:.2f} before, {self.load_after:.2f} after; "
            f"section wall time {self.wall_s / 60:.1f} min._"
        )
