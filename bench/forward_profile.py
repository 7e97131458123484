"""Where a forward pass of the asr model spends its time on this CPU: torch's profiler on one
pass over a 15 s clip, at the precision `auto` serves here, grouped into what a faster backend
could change (matrix products, attention, convolutions, normalisation, the rest), with the
matrix products' achieved rate against this CPU's measured peak for one large product.

    python -m bench.forward_profile CHECKPOINT [--seconds 15] [--precision float32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import table
from services.asr.checkpoint import resolve_checkpoint
from services.asr.features import FeatureExtractor
from services.asr.weights import load_multilevel_ctc, use_onednn_linears
from services.common import audio

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "data" / "audio" / "002282_15.wav"
# Profiler op names (self time) by what they are, matched as prefixes, first group first.
GROUPS = {
    "matrix products (linear layers)": ("addmm", "mm", "linear", "_linear", "matmul", "bmm", "mkldnn_linear"),
    "attention (scaled dot product)": ("scaled_dot_product", "_scaled_dot_product", "_flash_attention"),
    "convolutions": ("conv", "_convolution", "mkldnn_convolution"),
    "normalisation": ("layer_norm", "native_layer_norm", "batch_norm", "native_batch_norm", "group_norm"),
    "element-wise (activations, adds, masks, copies)": (
        "add", "mul", "silu", "sigmoid", "gelu", "relu", "glu", "where", "masked_fill", "sub", "div", "softmax",
        "_softmax", "copy_", "clone", "contiguous", "cat", "_to_copy", "exp", "neg", "pow", "sqrt", "rsqrt",
    ),
}


def _group(name: str) -> str:
    short = name.rsplit("::", maxsplit=1)[-1].lower()
    for group, keys in GROUPS.items():
        if short.startswith(keys):
            return group
    return "the rest"


def linear_flops(model: torch.nn.Module, frames: int) -> float:
    """Floating-point operations of every nn.Linear for `frames` rows (2 per multiply-add)."""
    total = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            total += 2.0 * frames * module.in_features * module.out_features
    return total


def peak_gflops(rows: int, dtype: torch.dtype) -> float:
    """The rate of one large product (rows x 1024 x 4096) through the same linear kernels."""
    layer = torch.nn.Linear(1024, 4096).to(dtype)
    if dtype == torch.float32:
        use_onednn_linears(layer)
    x = torch.randn(rows, 1024, dtype=dtype)
    with torch.inference_mode():
        layer(x)
        began = time.perf_counter()
        for _ in range(5):
            layer(x)
        seconds = (time.perf_counter() - began) / 5
    return 2.0 * rows * 1024 * 4096 / seconds / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args(argv)
    files = resolve_checkpoint(args.checkpoint)
    model = load_multilevel_ctc(files, "cpu", args.precision)
    if args.precision == "float32":
        use_onednn_linears(model)
    samples = audio.decode_bytes(AUDIO.read_bytes(), max_duration_s=3600).samples[: int(args.seconds * 16_000)]
    extractor = FeatureExtractor(files.preprocessor_config)
    features, mask = extractor([np.asarray(samples)])
    with torch.inference_mode():
        model(features, mask)  # warm-up: oneDNN primitives are built on the first call
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            began = time.perf_counter()
            model(features, mask)
            wall_ms = (time.perf_counter() - began) * 1000
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        if event.self_cpu_time_total <= 0:
            continue
        group = _group(event.key)
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total / 1000
    measured = sum(totals.values())
    frames = int(features.shape[1])
    flops = linear_flops(model, frames)
    linear_ms = totals.get("matrix products (linear layers)", 0.0)
    dtype = torch.bfloat16 if args.precision == "bfloat16" else torch.float32
    peak = peak_gflops(frames, dtype)
    threads = torch.get_num_threads()
    rows = [
        [group, f"{ms:.0f}", f"{100 * ms / measured:.1f} %"]
        for group, ms in sorted(totals.items(), key=lambda item: -item[1])
    ]
    print(
        f"One forward pass of `{files.directory.name}` in torch {args.precision} over {args.seconds:g} s "
        f"({frames} feature frames), {threads} threads: {wall_ms:.0f} ms. Self time of each kind of "
        "operation (as the calling thread saw it, its intra-op threads working in parallel inside):"
    )
    print()
    print("\n".join(table(["kind of operation", "self CPU ms", "share"], rows)))
    print()
    achieved = flops / (linear_ms / 1000) / 1e9 if linear_ms > 0 else float("nan")
    print(
        f"The linear layers do {flops / 1e9:.0f} GFLOP for this clip: {achieved:.0f} GFLOP/s achieved, "
        f"against {peak:.0f} GFLOP/s for one {frames}x1024x4096 product through the same kernels on "
        f"this machine ({100 * achieved / peak:.0f} % of it)."
    )


if __name__ == "__main__":
    main()
