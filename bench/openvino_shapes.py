"""OpenVINO: fully dynamic shapes against length buckets, on recitation of varied lengths.

`python -m bench.openvino_shapes GRAPH.onnx CHECKPOINT [--precision bfloat16] [--buckets 0,32,128]`

Each setting compiles the graph once (its own cache directory), then runs one forward pass per
clip on clips of distinct lengths (each length met for the first time, as in serving, where
every recording has its own), interleaved across settings; prints the p50 and p95 per pass and
the compile time. Bucketing pads the frame axis to a multiple of the width (masked frames): fewer
distinct shapes for the plugin, more frames to compute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import p50_p95, table
from bench.models import log
from services.asr.checkpoint import resolve_checkpoint
from services.asr.features import FeatureExtractor
from services.asr.openvino_backend import OpenVinoMultiLevelCTC
from services.common import audio

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "data" / "audio" / "fatiha_long_track.wav"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("graph", type=Path)
    parser.add_argument("checkpoint")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--buckets", default="0,32,128", help="bucket widths in feature frames (0: dynamic)")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--min-s", type=float, default=3.0)
    parser.add_argument("--max-s", type=float, default=8.0)
    args = parser.parse_args(argv)
    files = resolve_checkpoint(args.checkpoint)
    samples = audio.decode_bytes(AUDIO.read_bytes(), max_duration_s=3600).samples
    rng = np.random.default_rng(0)
    lengths = rng.uniform(args.min_s, args.max_s, size=args.clips)
    extractor = FeatureExtractor(files.preprocessor_config)
    batches = [extractor.extract([samples[: int(s * 16_000)]]) for s in lengths]
    widths = [int(w) for w in args.buckets.split(",")]
    backends, compile_s = {}, {}
    for width in widths:
        backends[width] = OpenVinoMultiLevelCTC(
            args.graph, precision=args.precision, cache_dir=Path(tempfile.mkdtemp()), bucket_frames=width
        )
        compile_s[width] = backends[width].compile_s
        log(f"openvino-shapes: bucket {width} compiled in {compile_s[width]:.1f} s")
    times: dict[int, list[float]] = {w: [] for w in widths}
    for index, batch in enumerate(batches):
        for width, backend in backends.items():
            began = time.perf_counter()
            backend(batch.features, batch.attention_mask, batch.input_frames)
            times[width].append((time.perf_counter() - began) * 1000)
        log(f"openvino-shapes: clip {index + 1}/{len(batches)} ({lengths[index]:.1f} s)")
    rows = [
        [("dynamic" if w == 0 else f"bucket {w} frames"), p50_p95(times[w]), f"{compile_s[w]:.1f}"] for w in widths
    ]
    print("\n".join(table(["shapes", "forward ms per clip (p50 / p95)", "compile s"], rows)))


if __name__ == "__main__":
    main()
