"""Latency per stage, in process and through the mesh, for 5/15/30 s clips.

For each CPU option: the three stages (asr, alignment, tajweed) and a mesh gateway as four
processes on loopback, and beside them a gateway in `local` mode (every stage inside it: the
in-process baseline). Calls alternate between the two (in-process first on even rounds, mesh
first on odd ones) so that load on the shared machine weighs on both alike. Each assessment
reports its stages and their own timings; a stage call's time beyond the stage's own work is
its hop (conversion, protobuf, HTTP/2, loopback), and the messages are also measured directly.
The memory of every process is read from /proc at the end.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from bench import calls, realistic, wire
from bench.clips import Clip, describe
from bench.common import fmt_ms, p50, p50_p95, table
from bench.context import Context, Section
from bench.models import Backend, log
from bench.processes import CHANNEL_OPTIONS, Cluster, Proc, base_env, peak_rss_mib, stage_targets
from services.common.pb import gateway_pb2_grpc

# The seed implementation's budget (RTX 3060 Ti): total latency per clip length (bench/gpu.py checks its VRAM < 6 GB).
SEED_BUDGET_MS = {5.0: 600.0, 15.0: 1300.0, 30.0: 2000.0}
MODES = ("in-process", "mesh")

# (row label, AssessSample.value key); rows whose key no sample has are left out.
FIXED_ROWS: list[tuple[str, str]] = [
    ("audio decode (gateway)", "stage:audio"),
    ("reference (cache hit)", "stage:reference"),
    ("energy envelope (beside asr)", "stage:energy"),
    ("asr: audio decode", "timing:asr/decode_audio"),
    ("asr: features", "timing:asr/features"),
    ("asr: batching queue", "timing:asr/queue"),
    ("asr: model", "timing:asr/model"),
    ("asr: CTC decode", "timing:asr/ctc_decode"),
    ("asr: call hop", "hop:asr"),
    ("verification", "stage:verification"),
    ("alignment", "timing:alignment/alignment"),
    ("alignment: call hop", "hop:alignment"),
    ("tajweed", "timing:tajweed/tajweed"),
    ("tajweed: call hop", "hop:tajweed"),
    ("fusion", "stage:fusion"),
    ("total (gateway)", "total"),
    ("client round trip", "wall"),
]


@dataclass
class BackendResult:
    backend: Backend
    samples: dict[tuple[str, float], list[calls.AssessSample]]
    memory: list[tuple[str, float, float]]
    wire: dict[str, wire.Traffic]
    startup_s: float

    def values(self, mode: str, seconds: float, key: str) -> list[float]:
        out = []
        for sample in self.samples.get((mode, seconds), []):
            value = sample.value(key)
            if value is not None:
                out.append(value)
        return out

    def paired_ratio(self, seconds: float, key: str = "total") -> float:
        """Median over rounds of mesh / in-process (the two calls of a round ran back to back)."""
        local = self.values("in-process", seconds, key)
        mesh = self.values("mesh", seconds, key)
        ratios = [m / loc for loc, m in zip(local, mesh, strict=False) if loc > 0]
        return statistics.median(ratios) if ratios else float("nan")

    def overhead_outside_model(self, seconds: float) -> float:
        """The mesh's extra time as a share of the in-process total, from the time outside the
        model's forward passes: median over rounds of (mesh - in-process) of that time, over the
        in-process median total. The forward passes are the same computation in both modes and
        vary by tens of percent from run to run on a shared CPU, which would drown a few ms."""
        local = self.values("in-process", seconds, "outside-model")
        mesh = self.values("mesh", seconds, "outside-model")
        totals = self.values("in-process", seconds, "total")
        diffs = [m - loc for loc, m in zip(local, mesh, strict=False)]
        return statistics.median(diffs) / statistics.median(totals) if diffs and totals else float("nan")

    def rules_share(self, mode: str, seconds: float) -> float:
        """Median share of the gateway total spent in verification, alignment and tajweed."""
        shares = [
            s.value("rules") / s.total_ms  # type: ignore[operator]
            for s in self.samples.get((mode, seconds), [])
            if s.value("rules") is not None and s.total_ms > 0
        ]
        return statistics.median(shares) if shares else float("nan")

    def realistic_share(self, rows: list[realistic.Row], seconds: float, decode: str) -> float:
        """Share of the mesh total (p50) the rules would take on a realistic decode: the content
        check and tajweed as measured on it, plus the alignment stage and the tajweed hop as
        measured in the mesh (they do not read the decode)."""
        name = f"{seconds:g} s"
        row = next((r for r in rows if r.clip == name and r.decode == decode), None)
        totals = self.values("mesh", seconds, "total")
        alignment = self.values("mesh", seconds, "stage:alignment")
        hop = self.values("mesh", seconds, "hop:tajweed")
        if row is None or not totals or not alignment or not hop:
            return float("nan")
        return (row.verification_ms + p50(alignment) + row.tajweed_ms + p50(hop)) / p50(totals)

    def degraded(self) -> int:
        return sum(1 for samples in self.samples.values() for s in samples if s.degraded)


async def _measure(
    ctx: Context, clips: list[Clip], gateways: dict[str, Proc], runs: int, on_round: Callable[[], None]
) -> dict[tuple[str, float], list[calls.AssessSample]]:
    samples: dict[tuple[str, float], list[calls.AssessSample]] = {}
    channels = {m: grpc.aio.insecure_channel(p.address, options=CHANNEL_OPTIONS) for m, p in gateways.items()}
    try:
        stubs = {m: gateway_pb2_grpc.GatewayServiceStub(c) for m, c in channels.items()}
        for clip in clips:
            request = clip.assess_request()
            for mode in MODES:  # warm-up: the reference cache's miss, first-call costs
                await calls.assess(stubs[mode], request)
            for run in range(runs):
                order = MODES if run % 2 == 0 else MODES[::-1]
                for mode in order:
                    sample = await calls.assess(stubs[mode], request)
                    samples.setdefault((mode, clip.seconds), []).append(sample)
                on_round()
    finally:
        await asyncio.gather(*(c.close(None) for c in channels.values()))
    return samples


async def measure_backend(ctx: Context, backend: Backend, clips: list[Clip], runs: int) -> BackendResult:
    env = base_env(ctx.assets.checkpoint, ctx.cache_dir)
    with Cluster(env, ctx.log_dir / f"latency-{backend.key}") as cluster:
        alignment = cluster.start("alignment", "alignment")
        tajweed = cluster.start("tajweed", "tajweed")
        asr = cluster.start("asr", "asr", backend.env(ctx.assets))
        startup = await asyncio.to_thread(cluster.wait_serving)
        mesh = cluster.start("gateway", "gateway (mesh)", stage_targets(asr, alignment, tajweed))
        local = cluster.start(
            "gateway", "gateway (in-process: all stages)", {"MUAALEM_GATEWAY_MODE": "local", **backend.env(ctx.assets)}
        )
        startup += await asyncio.to_thread(cluster.wait_serving)
        log(f"latency {backend.key}: processes SERVING after {startup:.0f} s")
        done = 0

        def progress() -> None:
            nonlocal done
            done += 1
            log(f"latency {backend.key}: round {done}/{runs * len(clips)}")

        samples = await _measure(ctx, clips, {"in-process": local, "mesh": mesh}, runs, progress)
        memory = [(p.label, peak_rss_mib(p.process.pid), p.rss_mib()) for p in (local, mesh, asr, alignment, tajweed)]
        addresses = {"asr": asr.address, "alignment": alignment.address, "tajweed": tajweed.address}
        costs = {c.name: await wire.measure(addresses, c.assess_request(), env) for c in clips}
    return BackendResult(backend, samples, memory, costs, startup)


def _stage_rows(result: BackendResult, clips: list[Clip]) -> list[list[str]]:
    rows: list[tuple[str, str]] = list(FIXED_ROWS)
    # The tajweed validators' own timings, as the service reports them.
    names = sorted(
        {
            key.split("/", 1)[1]
            for samples in result.samples.values()
            for s in samples
            for key in s.timings
            if key.startswith("tajweed/") and key != "tajweed/tajweed"
        }
    )
    at = rows.index(("tajweed: call hop", "hop:tajweed"))
    rows[at:at] = [(f"tajweed: {name}", f"timing:tajweed/{name}") for name in names]
    out = []
    for label, key in rows:
        cells = [label]
        seen = False
        for clip in clips:
            for mode in MODES:
                values = result.values(mode, clip.seconds, key)
                seen = seen or bool(values)
                cells.append(p50_p95(values))
        if seen:
            out.append(cells)
    return out


def _summary_rows(result: BackendResult, clips: list[Clip]) -> list[list[str]]:
    rows = []
    for clip in clips:
        budget = SEED_BUDGET_MS.get(clip.seconds)
        local_total = result.values("in-process", clip.seconds, "total")
        mesh_total = result.values("mesh", clip.seconds, "total")
        overhead = p50(mesh_total) - p50(local_total) if local_total and mesh_total else float("nan")
        rows.append(
            [
                clip.name,
                f"< {budget:.0f}" if budget else "-",
                p50_p95(local_total),
                p50_p95(mesh_total),
                p50_p95(result.values("mesh", clip.seconds, "wall")),
                f"{result.paired_ratio(clip.seconds):.3f}",
                fmt_ms(overhead),
                f"{100 * result.overhead_outside_model(clip.seconds):+.2f} %",
                f"{100 * result.rules_share('mesh', clip.seconds):.1f} %",
            ]
        )
    return rows


def render(result: BackendResult, clips: list[Clip], runs: int) -> list[str]:
    b = result.backend
    lines = [f"### {b.label} (`MUAALEM_ASR_BACKEND={b.backend}`, `MUAALEM_ASR_PRECISION={b.precision}`)", ""]
    lines += [
        f"Totals, ms, p50 / p95 over {runs} runs per mode (nearest rank: with 10 runs p95 is the slowest). "
        "The seed's budget is for an RTX 3060 Ti GPU, these figures are CPU-only: the column is there "
        "for scale, not as a like-for-like target. mesh / in-process is the median of the per-round "
        "ratios of the gateway totals. The forward passes are the same work in both modes and vary by "
        "tens of percent between runs on a shared CPU, so the mesh's overhead is also given from the "
        "time outside them: the median per-round difference of (total - asr model), as a share of the "
        "in-process total. 'rules' is verification + alignment + tajweed as a share of the mesh "
        "total (p50).",
        "",
    ]
    lines += table(
        [
            "clip",
            "seed budget ms",
            "in-process total",
            "mesh total",
            "mesh client round trip",
            "mesh / in-process",
            "mesh - in-process ms (p50)",
            "mesh overhead outside the model",
            "rules share",
        ],
        _summary_rows(result, clips),
    )
    header = ["stage (ms, p50 / p95)"] + [f"{c.name} {m}" for c in clips for m in MODES]
    lines += [
        "",
        "Per stage. The asr, energy and reference stages run at the same time (the total is not "
        "their sum); a 'call hop' is the stage call's duration seen by the gateway minus the "
        "stage's own timing: in process the protobuf conversion only, in the mesh also "
        "serialisation, HTTP/2 and loopback.",
        "",
        *table(header, _stage_rows(result, clips)),
    ]
    work = [
        f"{name}: {t.frames} output frames, {t.reference_phonemes} reference phonemes, "
        f"{t.decoded_phonemes} decoded"
        for name, t in result.wire.items()
    ]
    lines += ["", "What the stages worked on (random weights decode noise): " + "; ".join(work) + "."]
    if result.degraded():
        lines += ["", f"**{result.degraded()} assessments came back degraded** (see the service logs)."]
    lines += ["", "Messages on the wire (one assessment, protobuf alone, median of 20):", ""]
    lines += wire.render(result.wire)
    return lines


def render_memory(results: list[BackendResult]) -> list[str]:
    rows = []
    for result in results:
        for label, peak, rss in result.memory:
            rows.append([result.backend.label, label, f"{peak:.0f}", f"{rss:.0f}"])
    return table(["CPU option", "process", "peak RSS MiB (VmHWM)", "RSS at the end MiB"], rows)


async def run(ctx: Context) -> list[Section]:
    clips = ctx.clips(ctx.args.durations)
    provenance = ctx.provenance()
    results = []
    for backend in ctx.backends(ctx.args.latency_backends):
        results.append(await measure_backend(ctx, backend, clips, ctx.runs))
    ctx.results["latency"] = results
    rows = await asyncio.to_thread(realistic.measure, results[0].wire) if results else []
    ctx.results["realistic"] = rows
    provenance.finish()
    lines = [
        "Clips (real recordings, cut or looped; every call with `run_rules_on_mismatch`, so that "
        "with random weights, which never decode the passage, every stage still runs: the "
        "verification stage therefore always takes its mismatch path, the phonetic search of "
        "what was recited):",
        "",
        *describe(clips),
        "",
    ]
    for result in results:
        lines += [*render(result, clips, ctx.runs), ""]
    if rows:
        lines += ["### The content check and tajweed on realistic decodes", ""]
        lines += realistic.render(rows)
        shares = [
            f"{c.name}: {100 * results[0].realistic_share(rows, c.seconds, realistic.LEARNER):.1f} %" for c in clips
        ]
        lines += [
            "",
            f"With the learner's decode, verification + alignment + tajweed would take this share of the "
            f"mesh total ({results[0].backend.label}, p50): " + ", ".join(shares) + ".",
            "",
        ]
    memory = [
        "Peak resident memory of each process over the latency runs (VmHWM, which includes loading "
        "the weights) and its resident memory at the end. The in-process gateway holds every stage.",
        "",
        *render_memory(results),
        "",
        "GPU memory: no GPU here; `bench.gpu` reports `torch.cuda.max_memory_allocated` per clip "
        "length and batch size on a CUDA host (see the GPU section).",
    ]
    return [
        Section("latency", "Latency per stage: in process and through the mesh", lines, provenance),
        Section("memory", "Memory per process", memory, provenance),
    ]
