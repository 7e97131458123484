"""Export of a multi-level CTC checkpoint to ONNX (`muaalem export-onnx`), optionally int8.

The graph takes (features (B, T, 160) float32, attention_mask (B, T) int64, input_frames (B,)
int64) with dynamic B and T and returns one float32 logits output per level, in `levels` order.
What the runtime needs besides the graph travels in the model's metadata: the levels, the
checkpoint version and dev flag, the adapter arithmetic for output lengths, and the parameter
count. A model over 2 GB (the full-size one is 2.4 GB in float32) is written with its weights
in a side file `<name>.data`, as ONNX requires.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from services.common.errors import FailedPrecondition, Unavailable

from .checkpoint import CheckpointFiles
from .graph_names import INPUT_NAMES
from .modeling import MultiLevelCTC
from .weights import load_multilevel_ctc

METADATA_KEY = "muaalem"
# The precision a statically quantised graph declares (weights and activations int8).
STATIC_INT8 = "int8-static"
# protobuf's hard limit on one message; past it the weights must go to external data.
_PROTO_LIMIT = 2**31 - 1


def output_name(level: str) -> str:
    return f"logits_{level}"


class _Exportable(nn.Module):
    """Dict outputs as a tuple in level order (ONNX outputs are positional)."""

    def __init__(self, model: MultiLevelCTC) -> None:
        super().__init__()
        self.model = model
        self.levels = model.levels

    def forward(self, features: Tensor, attention_mask: Tensor, input_frames: Tensor) -> tuple[Tensor, ...]:
        logits = self.model(features, attention_mask, input_frames)
        return tuple(logits[level] for level in self.levels)


def export_onnx(
    files: CheckpointFiles,
    out_path: str | Path,
    *,
    int8: bool = False,
    opset: int = 18,
    calibration: Sequence[Path] = (),
) -> Path:
    """Writes the model as ONNX: float32; int8 weights with dynamic quantization (`int8`); or,
    given `calibration` recordings, static int8 (weights and activations, QDQ), the activation
    ranges measured on those recordings."""
    if int8 and calibration:
        raise FailedPrecondition("choose dynamic (--int8) or static (--int8-static AUDIO...) quantization, not both")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = load_multilevel_ctc(files, "cpu", "float32")
    metadata = {
        "levels": model.levels,
        "version": files.version,
        "name": files.name,
        "weights_digest": files.weights_digest,
        "dev_weights": files.dev_weights,
        "add_adapter": model.config.add_adapter,
        "adapter_kernel_size": model.config.adapter_kernel_size,
        "adapter_stride": model.config.adapter_stride,
        "num_adapter_layers": model.config.num_adapter_layers,
        "parameters": model.num_parameters(),
        "precision": "int8" if int8 else STATIC_INT8 if calibration else "float32",
    }
    large = model.num_parameters() * 4 > _PROTO_LIMIT // 2
    if not int8 and not calibration:
        _export_float32(model, out, opset, large)
        _set_metadata(out, metadata)
        return out
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        float_path = Path(tmp) / "float32.onnx"
        _export_float32(model, float_path, opset, large)
        if calibration:
            from .calibration import quantize_static_int8

            quantize_static_int8(float_path, out, files, calibration)
        else:
            _quantize(float_path, out)
    _set_metadata(out, metadata)
    return out


def _export_float32(model: MultiLevelCTC, path: Path, opset: int, external: bool) -> None:
    batch, frames = 2, 64
    example = (
        torch.randn(batch, frames, 160),
        torch.ones(batch, frames, dtype=torch.int64),
        torch.full((batch,), frames, dtype=torch.int64),
    )
    example[1][1, frames // 2 :] = 0
    example[2][1] = frames // 2 + 1
    b = torch.export.Dim("batch", min=1, max=1024)
    t = torch.export.Dim("frames", min=2, max=100_000)
    dynamic: dict[str, Any] = {
        "features": {0: b, 1: t},
        "attention_mask": {0: b, 1: t},
        "input_frames": {0: b},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Exportable(model).eval(),
            example,
            dynamo=True,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=[output_name(level) for level in model.levels],
            dynamic_shapes=dynamic,
            external_data=external,
            verbose=False,
        )
    if program is None:
        raise FailedPrecondition("torch.onnx.export returned no program")
    program.save(str(path), external_data=external)


def _quantize(source: Path, target: Path) -> None:
    """int8 weights for MatMul/Gemm, activations quantized at run time (a quarter of the bytes:
    even the full-size model then fits in one file)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )


def _set_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    # Only the graph is rewritten: weights in an external data file stay where they are.
    model = onnx.load(str(path), load_external_data=False)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model, str(path))


def graph_inputs(
    features: Tensor, attention_mask: Tensor | None, input_frames: Tensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exported graph's three inputs as contiguous arrays (features float32, mask and
    frame counts int64), an absent mask or frame count meaning "every frame is real"."""
    batch, frames = features.shape[:2]
    if attention_mask is None:
        attention_mask = torch.ones((batch, frames), dtype=torch.int64)
    if input_frames is None:
        input_frames = torch.full((batch,), frames, dtype=torch.int64)
    return tuple(  # type: ignore[return-value]
        np.ascontiguousarray(t.detach().to("cpu").numpy(), dtype=d)
        for t, d in ((features, np.float32), (attention_mask, np.int64), (input_frames, np.int64))
    )


def existing_graph(path: str | Path) -> Path:
    """The graph a backend is to run, refused with the command that writes one when it is absent."""
    graph = Path(path)
    if not graph.is_file():
        raise Unavailable(
            f"ONNX model {graph} does not exist; write one with "
            "`muaalem export-onnx CHECKPOINT OUT.onnx [--int8]` and set MUAALEM_ASR_ONNX_PATH"
        )
    return graph


def read_metadata(path: Path) -> dict[str, Any]:
    """What `export_onnx` recorded in a graph (without reading its weights)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not a model
        raise FailedPrecondition(f"cannot load ONNX model {path}: {exc}") from exc
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            data: dict[str, Any] = json.loads(entry.value)
            return data
    raise FailedPrecondition(f"{path} was not written by `muaalem export-onnx` (no '{METADATA_KEY}' metadata)")
