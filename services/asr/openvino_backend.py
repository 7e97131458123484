"""OpenVINO backend with the call signature of `MultiLevelCTC` (CPU).

Chosen by configuration only (MUAALEM_ASR_BACKEND=openvino), never as a silent fallback. It runs
the graph `muaalem export-onnx` writes (OpenVINO reads the ONNX file as it is; its own exporter
does not know Wav2Vec2-BERT), compiled once at start for the CPU at the precision asked for:
`bfloat16` is OpenVINO's INFERENCE_PRECISION_HINT=bf16 (weights and activations in bfloat16,
accumulation in float32; refused on a CPU without native bfloat16, where the plugin would run f32
under that name), `float32` keeps every op in float32, and an int8 graph (dynamic or static
quantisation) runs its integer ops as written.

The compiled model is cached in MUAALEM_CACHE_DIR/openvino (OpenVINO's CACHE_DIR, keyed by the
graph and the compile options): a restart reads the blob instead of compiling again.

Shapes stay dynamic by default; `bucket_frames` > 0 pads the frame axis of every batch up to a
multiple of it (the padding is masked, so outputs are unchanged), which bounds the number of
distinct shapes the plugin sees. bench/openvino_shapes.py measures both: on the full-size model
in bfloat16, five clips of 3-8 s each met once, dynamic shapes took 2420 ms per clip (p50)
against 2971 ms with 64-frame buckets (2 shared cores, under load), so dynamic is the default.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from services.common.errors import FailedPrecondition

from .export import INPUT_NAMES, existing_graph, graph_inputs, output_name, read_metadata

log = logging.getLogger(__name__)

# OpenVINO's names for the precisions this backend serves from a float32 graph.
_HINTS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


class OpenVinoMultiLevelCTC:
    """model(features, attention_mask, input_frames=None) -> {level: float32 logits (B, T', V)}."""

    def __init__(
        self,
        path: str | Path,
        *,
        precision: str = "float32",
        cache_dir: Path | None = None,
        threads: int = 0,
        bucket_frames: int = 0,
    ) -> None:
        import openvino as ov

        self.path = existing_graph(path)
        self.metadata: dict[str, Any] = read_metadata(self.path)
        self.levels: list[str] = list(self.metadata["levels"])
        self.version: str = self.metadata["version"]
        self.weights_digest: str = self.metadata["weights_digest"]
        self.dev_weights: bool = bool(self.metadata["dev_weights"])
        graph_precision = str(self.metadata["precision"])
        if graph_precision != "float32":
            # A quantised graph: its integer ops run as written, the others at the precision
            # asked for (auto's bfloat16 included) where that is a float one.
            if precision not in ("auto", "float32", "bfloat16", "int8", graph_precision):
                raise FailedPrecondition(
                    f"{self.path} is a {graph_precision} graph; it cannot run at MUAALEM_ASR_PRECISION={precision}"
                )
            precision, hint = graph_precision, _HINTS.get(precision, "f32")
        elif precision in _HINTS:
            hint = _HINTS[precision]
        else:
            raise FailedPrecondition(
                f"the openvino backend runs a float32 graph at float32, bfloat16 or float16, not {precision!r}; "
                "for int8 export a quantised graph (`muaalem export-onnx --int8` or `--int8-static`)"
            )
        self.precision = precision
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.bucket_frames = bucket_frames
        core = ov.Core()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        # No thread pinning: on shared or CPU-limited cores (containers, the benchmark machine) a
        # pinned thread waits for its core; measured on 2 shared cores at 15 s in bfloat16,
        # 7.9 s unpinned against 9.6 s pinned (p50 of 3, under load).
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": hint,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        started = time.perf_counter()
        try:
            # From the path, not a read model: a cache hit then skips reading the graph too.
            self.compiled = core.compile_model(str(self.path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise FailedPrecondition(f"OpenVINO cannot compile {self.path}: {exc}") from exc
        self.compile_s = time.perf_counter() - started
        # What the plugin settled on (f32 where the CPU lacks what the hint asks for).
        hinted = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.hint = hinted.get_type_name() if hasattr(hinted, "get_type_name") else str(hinted)
        if graph_precision == "float32" and self.hint != hint:
            # The plugin quietly computes in f32 what was asked in bf16 or f16: served under that
            # name, the model would report a precision it does not run.
            capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            raise FailedPrecondition(
                f"the openvino backend cannot run {precision} on this CPU: OpenVINO's CPU plugin would "
                f"compute in {self.hint} (its capabilities: {capabilities}); set MUAALEM_ASR_PRECISION=float32, "
                "or auto to choose by the hardware"
            )
        self._request = self.compiled.create_infer_request()
        self._outputs = [self.compiled.output(output_name(level)) for level in self.levels]

    def __call__(
        self, features: Tensor, attention_mask: Tensor | None = None, input_frames: Tensor | None = None
    ) -> dict[str, Tensor]:
        frames = features.shape[1]
        feats, mask, lengths = graph_inputs(features, attention_mask, input_frames)
        padded = _bucket(frames, self.bucket_frames)
        if padded > frames:
            # Masked frames past every item's extent: the graph ignores them (see modeling.py).
            feats = np.pad(feats, ((0, 0), (0, padded - frames), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, padded - frames)))
        inputs = {INPUT_NAMES[0]: feats, INPUT_NAMES[1]: mask, INPUT_NAMES[2]: lengths}
        result = self._request.infer(inputs)
        # Output frames of the unpadded batch (the padding adds frames only at the end).
        out: dict[str, Tensor] = {}
        for level, port in zip(self.levels, self._outputs, strict=True):
            value = np.array(result[port], dtype=np.float32, copy=True)
            out[level] = torch.from_numpy(value)
        if padded > frames:
            keep = _output_frames(frames, self.metadata)
            out = {level: value[:, :keep] for level, value in out.items()}
        return out

    def num_parameters(self) -> int:
        return int(self.metadata["parameters"])


def _bucket(frames: int, width: int) -> int:
    return frames if width <= 0 else -(-frames // width) * width


def _output_frames(frames: int, metadata: dict[str, Any]) -> int:
    from .chunking import strided_frames

    if not metadata.get("add_adapter"):
        return frames
    kernel, stride = int(metadata["adapter_kernel_size"]), int(metadata["adapter_stride"])
    for _ in range(int(metadata["num_adapter_layers"])):
        frames = strided_frames(frames, kernel, stride, stride // 2)
    return frames

