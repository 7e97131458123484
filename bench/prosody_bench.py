"""Prosody latency for 5 s, 15 s and 30 s of real recitation (bench/clips.py): each feature of
the Analyze call, the Analyze servicer in process (decode, features, protobuf), and a comparison
(the Compare servicer: the learner against a reference read from its protobuf, as a cached
reference recitation is; DTW word pairing, the worst case, and aligned word pairing).

Run: .venv/bin/python -m bench.prosody_bench [--runs 10]
Prints markdown tables (p50 / p95 in ms).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict

import numpy as np

from bench.clips import clip
from bench.common import p50_p95, table
from services.common.pb import common_pb2, prosody_pb2
from services.prosody.config import ProsodyConfig
from services.prosody.convert import features_to_proto
from services.prosody.features import analyze
from services.prosody.pitch import PitchTracker
from services.prosody.servicer import ProsodyServicer

FEATURES = ("pitch", "energy", "voice_quality", "maqam", "acoustic")


def _pcm(samples: np.ndarray) -> common_pb2.Audio:
    layout = common_pb2.RawPcm(
        data=np.ascontiguousarray(samples, dtype="<f4").tobytes(),
        sample_rate_hz=16000,
        channels=1,
        encoding=common_pb2.PCM_ENCODING_F32LE,
    )
    return common_pb2.Audio(pcm=layout)


def _aligned(duration_s: float, words: int = 10) -> tuple[common_pb2.Reference, common_pb2.Alignment]:
    """An evenly spread alignment of `words` words of CV syllables: the aligned pairing path's cost."""
    fatha = "\u064e"
    reference = common_pb2.Reference()
    alignment = common_pb2.Alignment(confidence=1.0)
    step = duration_s / words
    index = 0
    for w in range(words):
        start = w * step
        alignment.words.add(word_index=w, uthmani=f"w{w}", span=common_pb2.FrameSpan(start_s=start, end_s=start + step))
        for s in range(4):
            t = start + s * step / 4
            alignment.groups.add(
                phonemes="ب" + fatha, word_index=w, span=common_pb2.FrameSpan(start_s=t, end_s=t + step / 4)
            )
            alignment.tokens.add(
                phoneme="ب", phoneme_index=index, span=common_pb2.FrameSpan(start_s=t, end_s=t + step / 8)
            )
            alignment.tokens.add(
                phoneme=fatha,
                phoneme_index=index + 1,
                span=common_pb2.FrameSpan(start_s=t + step / 8, end_s=t + step / 4),
            )
            index += 2
    return reference, alignment


async def run(runs: int, durations: list[float]) -> list[str]:
    tracker = PitchTracker()
    servicer = ProsodyServicer(ProsodyConfig.from_env({}), tracker)
    feature_rows, call_rows = [], []
    for seconds in durations:
        c = clip(seconds)
        analyze(c.samples, 16000, tracker)  # warm: the onnxruntime session and numpy paths
        per_feature: dict[str, list[float]] = defaultdict(list)
        analyze_ms, dtw_ms, aligned_ms = [], [], []
        features = None
        for _ in range(runs):
            f = analyze(c.samples, 16000, tracker)
            for name in FEATURES:
                per_feature[name].append(f.timings_ms[name])
            started = time.perf_counter()
            reply = await servicer.Analyze(prosody_pb2.AnalyzeRequest(audio=_pcm(c.samples)))
            analyze_ms.append((time.perf_counter() - started) * 1000)
            features = reply.features
        assert features is not None
        plain = prosody_pb2.Recitation(features=features)
        reference, alignment = _aligned(seconds)
        aligned = prosody_pb2.Recitation(features=features, reference=reference, alignment=alignment)
        for _ in range(runs):
            started = time.perf_counter()
            await servicer.Compare(prosody_pb2.CompareRequest(learner=plain, reference=plain))
            dtw_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await servicer.Compare(prosody_pb2.CompareRequest(learner=aligned, reference=aligned))
            aligned_ms.append((time.perf_counter() - started) * 1000)
        feature_rows.append([c.name, *(p50_p95(per_feature[name]) for name in FEATURES)])
        size = len(features_to_proto(analyze(c.samples, 16000, tracker)).SerializeToString()) / 1024
        call_rows.append([c.name, p50_p95(analyze_ms), p50_p95(aligned_ms), p50_p95(dtw_ms), f"{size:.0f}"])
    lines = ["# Each feature (p50 / p95 ms)", ""]
    lines += table(["audio", *FEATURES], feature_rows)
    lines += ["", "# The calls, in process (p50 / p95 ms)", ""]
    lines += table(
        ["audio", "Analyze", "Compare, words by alignment", "Compare, words by DTW", "features KiB"], call_rows
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--durations", default="5,15,30")
    args = parser.parse_args()
    durations = [float(x) for x in args.durations.split(",") if x.strip()]
    print("\n".join(asyncio.run(run(args.runs, durations))))


if __name__ == "__main__":
    main()
