"""Assess with and without compare_to, side by side: the gateway in local mode (every stage in
this process), test.wav (8:75) looped to 10, 15 and 30 s against the whole ayah (5 s cannot hold
its phonemes), compared with test.wav itself registered as the reference recitation (its
analysis cached after the first call, as in production). The difference is what a comparison
adds to an assessment's latency: the learner's prosody runs beside the asr, then one Compare
call after the alignment.

Run: .venv/bin/python -m bench.prosody_assess [--runs 5] [--checkpoint DIR]
(default checkpoint: the tiny random-weight development one, whose asr is far faster than the
real model's, so the prosody stage's share shows at its largest.) Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import ROOT, p50_p95, table
from services.client.options import build_request
from services.common.audio import decode_bytes

RECORDING = ROOT / "tests" / "data" / "audio" / "test.wav"


def _looped(samples: np.ndarray, seconds: float) -> bytes:
    n = int(seconds * 16000)
    looped = np.resize(samples, n)
    out = io.BytesIO()
    sf.write(out, looped, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


async def run(runs: int, durations: list[float], checkpoint: str) -> list[str]:
    from services.gateway.server import build

    with tempfile.TemporaryDirectory() as tmp:
        environ = {
            "MUAALEM_GATEWAY_MODE": "local",
            "MUAALEM_GATEWAY_HTTP_PORT": "-1",
            "MUAALEM_GATEWAY_PORT": "0",
            "MUAALEM_GATEWAY_METRICS_PORT": "-1",
            "MUAALEM_ASR_MODEL": checkpoint or str(Path(tmp) / "absent"),
            "MUAALEM_ASR_DEV_FALLBACK": "" if checkpoint else "tiny",
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_CACHE_DIR": str(Path(tmp) / "cache"),
            "MUAALEM_RECITATIONS_DIR": str(Path(tmp) / "recitations"),
            "MUAALEM_SHUTDOWN_DELAY_S": "0",
        }
        server, app, _ = build(environ)
        await server.start()
        try:
            await server.wait_ready(timeout=300)
            assert app.recitations is not None
            teacher = decode_bytes(RECORDING.read_bytes(), name_hint=RECORDING.name)
            version = await app.assessor.versions.current()
            await app.recitations.add(
                teacher.samples, surah=8, ayah=75, last_ayah=None, reciter="teacher", make_default=True,
                model_version=version,
            )  # fmt: skip
            rows = []
            for seconds in durations:
                audio = _looped(teacher.samples, seconds)
                plain = build_request(audio, surah=8, ayah=75, run_rules_on_mismatch=True)
                compared = build_request(audio, surah=8, ayah=75, run_rules_on_mismatch=True)
                compared.compare_to = "teacher"
                await app.assess(plain, None)
                await app.assess(compared, None)  # warm both paths (and the reference's cache entry)
                without, with_, prosody, compare = [], [], [], []
                for _ in range(runs):
                    started = time.perf_counter()
                    await app.assess(plain, None)
                    without.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    answer = (await app.assess(compared, None)).assessment
                    with_.append((time.perf_counter() - started) * 1000)
                    stages = {s.stage: s.duration_ms for s in answer.stages}
                    prosody.append(stages.get("prosody", 0.0))
                    compare.append(stages.get("comparison", 0.0))
                added = [w - o for w, o in zip(with_, without, strict=True)]
                rows.append(
                    [
                        f"{seconds:g} s",
                        p50_p95(without),
                        p50_p95(with_),
                        p50_p95(added),
                        p50_p95(prosody),
                        p50_p95(compare),
                    ]
                )
        finally:
            await server.stop(grace=1)
    header = ["audio", "Assess", "Assess + compare_to", "added", "prosody (beside asr)", "comparison (after alignment)"]
    return ["# Assess with and without compare_to (p50 / p95 ms)", "", *table(header, rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--durations", default="10,15,30", help="the whole ayah needs >= ~9 s of frames")
    parser.add_argument("--checkpoint", default="", help="a multi_level_ctc checkpoint (default: tiny dev weights)")
    args = parser.parse_args()
    durations = [float(x) for x in args.durations.split(",") if x.strip()]
    print("\n".join(asyncio.run(run(args.runs, durations, args.checkpoint))))


if __name__ == "__main__":
    main()
