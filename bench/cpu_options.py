"""CPU execution options of the asr stage against torch fp32, on the full model: speed and how
far their outputs move.

Every option is an AsrEngine in this process (the asr service's core: features, batcher,
model, decode), loaded side by side and called in turn on the same audio (interleaved runs).
Agreement with the first option (torch fp32): the share of output frames whose most likely
phoneme is the same, the largest difference of a phoneme log-probability, and the normalised
edit distance of the decoded phoneme strings. Each option is a configuration, never a silent
fallback: MUAALEM_ASR_BACKEND, MUAALEM_ASR_PRECISION and MUAALEM_ASR_ONNX_PATH.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein

from bench import cpu_agreement
from bench.clips import Clip, describe
from bench.common import p50, p50_p95, table
from bench.context import Context, Section
from bench.models import Backend, log, native_bf16
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine, TranscribeOptions, Transcription

OPTIONS = TranscribeOptions(include_log_probs=True, levels=("phonemes",))


@dataclass
class OptionResult:
    model_ms: dict[float, list[float]] = field(default_factory=dict)
    total_ms: dict[float, list[float]] = field(default_factory=dict)
    last: dict[float, Transcription] = field(default_factory=dict)
    # Seconds from AsrEngine() to SERVING: (no compiled-model cache, with it); the second is
    # None for backends without one.
    start_s: tuple[float, float | None] = (0.0, None)
    # Resident memory the option added to the process when it loaded (MB).
    rss_mb: float = 0.0


def engine_env(ctx: Context, backend: Backend, cache_dir: Path | None = None) -> dict[str, str]:
    return {
        "MUAALEM_ASR_MODEL": str(ctx.assets.checkpoint),
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_ASR_DEVICE": "cpu",
        "MUAALEM_ASR_MAX_BATCH_SIZE": "1",
        **({"MUAALEM_CACHE_DIR": str(cache_dir)} if cache_dir is not None else {}),
        **backend.env(ctx.assets),
    }


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def start_engine(ctx: Context, backend: Backend, result: OptionResult) -> AsrEngine:
    """The option's engine; an OpenVINO one is started twice, with an empty compiled-model
    cache and then with the blob the first start wrote, to measure what the cache saves."""
    cold: float | None = None
    cache = Path(tempfile.mkdtemp(prefix="bench-ov-")) if backend.backend == "openvino" else None
    if cache is not None:
        began = time.perf_counter()
        first = AsrEngine(AsrConfig.from_env(engine_env(ctx, backend, cache)))
        await first.start()
        cold = time.perf_counter() - began
        await first.close()
        del first
        gc.collect()
    before = rss_mb()
    began = time.perf_counter()
    engine = AsrEngine(AsrConfig.from_env(engine_env(ctx, backend, cache)))
    await engine.start()
    warm = time.perf_counter() - began
    result.start_s = (cold, warm) if cold is not None else (warm, None)
    result.rss_mb = rss_mb() - before
    return engine


def agreement(candidate: Transcription, reference: Transcription) -> tuple[float, float, float]:
    """(frame argmax agreement, max |log-prob difference|, decode edit distance)."""
    ours, ref = candidate.log_probs["phonemes"], reference.log_probs["phonemes"]
    frames = min(ours.shape[0], ref.shape[0])
    same = float(np.mean(ours[:frames].argmax(-1) == ref[:frames].argmax(-1)))
    diff = float(np.max(np.abs(ours[:frames] - ref[:frames])))
    distance = float(Levenshtein.normalized_distance(candidate.decode.phonemes, reference.decode.phonemes))
    return same, diff, distance


async def measure(ctx: Context, backends: list[Backend], clips: list[Clip]) -> dict[str, OptionResult]:
    engines: dict[str, AsrEngine] = {}
    results = {b.key: OptionResult() for b in backends}
    try:
        for backend in backends:
            engines[backend.key] = await start_engine(ctx, backend, results[backend.key])
            log(f"cpu-options: {backend.key} loaded")
        for clip in clips:
            for engine in engines.values():
                await engine.transcribe(clip.samples, OPTIONS)  # warm-up at this length
            for run in range(ctx.runs):
                for key, engine in engines.items():
                    result = await engine.transcribe(clip.samples, OPTIONS)
                    timings = dict(result.timings)
                    results[key].model_ms.setdefault(clip.seconds, []).append(timings["model"])
                    results[key].total_ms.setdefault(clip.seconds, []).append(timings["total"])
                    results[key].last[clip.seconds] = result
                log(f"cpu-options {clip.name}: round {run + 1}/{ctx.runs}")
    finally:
        for engine in engines.values():
            await engine.close()
    return results


def render(backends: list[Backend], clips: list[Clip], results: dict[str, OptionResult], runs: int) -> list[str]:
    reference = backends[0]
    rows = []
    for clip in clips:
        base = p50(results[reference.key].model_ms[clip.seconds])
        for backend in backends:
            result = results[backend.key]
            model = result.model_ms[clip.seconds]
            same, diff, distance = agreement(result.last[clip.seconds], results[reference.key].last[clip.seconds])
            rows.append(
                [
                    clip.name,
                    backend.label,
                    p50_p95(model),
                    p50_p95(result.total_ms[clip.seconds]),
                    f"{base / p50(model):.2f}x",
                    f"{100 * same:.2f} %",
                    f"{diff:.2e}",
                    "identical" if distance == 0 else f"{distance:.3f}",
                    f"{result.rss_mb:.0f}",
                    _start(result.start_s),
                ]
            )
    config = [
        f"- {b.label}: `MUAALEM_ASR_BACKEND={b.backend}`, `MUAALEM_ASR_PRECISION={b.precision}`"
        + (f", `MUAALEM_ASR_ONNX_PATH` = `muaalem export-onnx CKPT OUT.onnx{_FLAGS[b.graph]}`" if b.runs_graph else "")
        + (f" (serving: {results[b.key].last[clips[0].seconds].model_version.precision_reason})"
           if b.precision == "auto" and clips else "")
        for b in backends
    ]
    return [
        f"The asr engine in process, one option after the other on the same audio, {runs} runs each "
        f"(ms, p50 / p95). Agreement is measured against {reference.label}. With random weights the "
        "log-probabilities are flatter than a trained model's, so argmax ties break more easily: "
        "agreement here is a lower bound of what real weights would show.",
        "",
        *describe(clips),
        "",
        *table(
            [
                "clip",
                "CPU option",
                "model ms",
                "asr total ms",
                f"speed-up (model, vs {reference.label})",
                "frame argmax agreement",
                "max abs log-prob diff",
                "decode edit distance",
                "RSS added at load (MB)",
                "start-up s (no cache / cached)",
            ],
            rows,
        ),
        "",
        "How each option is chosen (configuration only, never a silent fallback):",
        "",
        *config,
        "",
        "torch fp32 on CPU runs its linear layers through oneDNN (`use_onednn_linears` in "
        "services/asr/modeling.py): the BLAS torch links, MKL, takes its AVX2 path on CPUs that are "
        "not Intel's, which halved the matrix products' rate on this AMD EPYC. Same float32 "
        "arithmetic, another summation order.",
        "",
        *(
            []
            if native_bf16()
            else [
                "No bfloat16 rows: this CPU has no native bfloat16 (avx512_bf16 or AMX), where the "
                "openvino backend refuses it and torch emulates it at several times its float32 time; "
                "name them with --cpu-backends to measure them anyway.",
                "",
            ]
        ),
        "RSS added at load: the process's resident memory after the option's engine started minus "
        "before (options share one process, so this is each one's own weights and buffers, not a "
        "process peak). Start-up: AsrEngine() to SERVING; for OpenVINO first with an empty "
        "compiled-model cache (MUAALEM_CACHE_DIR/openvino), then again reading the blob it wrote.",
    ]


_FLAGS = {"fp32": "", "int8": " --int8", "int8-static": " --int8-static tests/data/audio/*.wav"}


def _start(start_s: tuple[float, float | None]) -> str:
    cold, warm = start_s
    return f"{cold:.1f}" if warm is None else f"{cold:.1f} / {warm:.1f}"


async def run(ctx: Context) -> list[Section]:
    clips = ctx.clips(ctx.args.durations)
    backends = ctx.backends(ctx.args.cpu_backends)
    provenance = ctx.provenance()
    results = await measure(ctx, backends, clips)
    lines = render(backends, clips, results, ctx.runs)
    if ctx.args.agreement_recitations > 0 and cpu_agreement.DEMO_CHECKPOINT.is_dir():
        count = ctx.args.agreement_recitations
        agreement_results = await cpu_agreement.measure(ctx.cache_dir, backends, count)
        lines += ["", *cpu_agreement.render(backends, agreement_results, count)]
    provenance.finish()
    return [
        Section(
            "cpu-options", "CPU options: ONNX Runtime, OpenVINO, bf16 and INT8 against torch fp32", lines, provenance
        )
    ]
