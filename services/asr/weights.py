"""Loading a checkpoint's weights into the layers of modeling.py, at a precision, on a device.

Precision resolution (`auto`, what each device serves), the safetensors reading and its checks
against the config, torch's dynamic int8 quantisation, and the oneDNN linears of the float32 CPU
path live here; modeling.py keeps only the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from services.common.errors import FailedPrecondition

from .checkpoint import CheckpointFiles
from .encoder_config import EncoderConfig
from .modeling import FrameClassifier, MultiLevelCTC, _EncoderModel

PRECISIONS = ("auto", "float32", "bfloat16", "float16", "int8")

# Keys a checkpoint may carry that inference never uses (SpecAugment's training-time embedding).
_IGNORED_KEYS = ("wav2vec2_bert.masked_spec_embed",)


def resolve_precision(precision: str, device: str, *, allow_cpu_float16: bool = False) -> str:
    """Checks the combination is served; `auto` must have been resolved by hardware.choose
    (which knows the CPU) before a model is loaded. allow_cpu_float16: a switch for tests only,
    so that the float16 path (masks, the position bias, layer norms in half) runs somewhere
    without a GPU; torch computes float16 on a CPU correctly but slowly, so serving refuses it."""
    if precision not in PRECISIONS:
        raise FailedPrecondition(f"precision {precision!r} is not one of {PRECISIONS}")
    is_cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        return "float16" if is_cuda else "float32"
    if precision == "float16" and not is_cuda and not allow_cpu_float16:
        raise FailedPrecondition("float16 is for CUDA; on CPU use float32 (default) or bfloat16")
    if precision == "int8" and is_cuda:
        raise FailedPrecondition(
            "int8 (dynamic quantization) runs on CPU only; on CUDA use float16"
        )
    return precision


def load_multilevel_ctc(
    files: CheckpointFiles, device: str = "cpu", precision: str = "auto", *, allow_cpu_float16: bool = False
) -> MultiLevelCTC:
    if files.kind != "multi_level_ctc":
        raise FailedPrecondition(f"{files.name} is a {files.kind} checkpoint, not multi_level_ctc")
    config = EncoderConfig.from_config(files.config)
    sizes = {str(k): int(v) for k, v in files.config["level_to_vocab_size"].items()}
    with torch.device("meta"):
        model = MultiLevelCTC(config, sizes)
    return _finish(model, files, device, resolve_precision(precision, device, allow_cpu_float16=allow_cpu_float16))


def load_frame_classifier(
    files: CheckpointFiles, device: str = "cpu", precision: str = "auto"
) -> FrameClassifier:
    if files.kind != "frame_classifier":
        raise FailedPrecondition(f"{files.name} is a {files.kind} checkpoint, not frame_classifier")
    if files.config.get("use_weighted_layer_sum"):
        raise FailedPrecondition(
            f"{files.directory}: use_weighted_layer_sum is not supported (the segmenter does not use it)"
        )
    config = EncoderConfig.from_config(files.config)
    labels = files.config.get("id2label")
    num_labels = int(files.config.get("num_labels", len(labels) if labels else 2))
    with torch.device("meta"):
        model = FrameClassifier(config, num_labels)
    return _finish(model, files, device, resolve_precision(precision, device))


def _finish(model: Any, files: CheckpointFiles, device: str, resolved: str) -> Any:
    state = _read_state(files)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    expected = set(shapes)
    missing = sorted(expected - state.keys())
    unexpected = sorted(k for k in state.keys() - expected if k not in _IGNORED_KEYS)
    if missing or unexpected:
        raise FailedPrecondition(
            f"{files.directory}: weights do not match the config: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for key in expected:
        target = shapes[key]
        if state[key].shape != target:
            raise FailedPrecondition(
                f"{files.directory}: {key} has shape {tuple(state[key].shape)}, config says {tuple(target)}"
            )
    compute = torch.float32 if resolved in ("float32", "int8") else getattr(torch, resolved)
    model.load_state_dict(
        {k: v.to(compute) for k, v in state.items() if k in expected}, strict=True, assign=True
    )
    model.eval().requires_grad_(False)
    model = model.to(device)
    if resolved == "int8":
        model = _quantize_dynamic(model)
    model.version = files.version
    model.dev_weights = files.dev_weights
    # Counted from the checkpoint: torch's quantised linears no longer list their weights.
    model.parameter_count = sum(state[key].numel() for key in expected)
    return model


def _read_state(files: CheckpointFiles) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    state: dict[str, Tensor] = {}
    for path in files.weight_files:
        try:
            state.update(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise FailedPrecondition(f"{path} is not a readable safetensors file: {exc}") from exc
    return state


def _quantize_dynamic(model: _EncoderModel) -> Any:
    """int8 weights for every nn.Linear, activations quantized on the fly (CPU)."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch deprecates torch.ao quantization in favour of torchao; 2.13 still runs it.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


class _OneDnnLinear(nn.Linear):
    """nn.Linear computed by oneDNN's inner product (CPU, float32): see use_onednn_linears."""

    def forward(self, input: Tensor) -> Tensor:
        return torch.ops.mkldnn._linear_pointwise(input, self.weight, self.bias, "none", [], "")


def use_onednn_linears(model: nn.Module) -> int:
    """Runs the float32 nn.Linear layers of a CPU model through oneDNN instead of the BLAS torch
    links (MKL), and returns how many. MKL takes its AVX2 path on CPUs that are not Intel's: on
    the AMD EPYC (AVX-512) of the benchmarks a 749x1024x4096 product ran at 210 GFLOP/s through
    MKL and 400 through oneDNN, and the gap widens when the cores are shared. The arithmetic is
    float32 either way; only the summation order differs (logits within ~1e-5). Not for export:
    the ONNX exporter does not know the oneDNN op, so only serving calls this."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return 0
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32:
            module.__class__ = _OneDnnLinear
            count += 1
    return count


def count_parameters(config: EncoderConfig, level_to_vocab_size: Mapping[str, int]) -> int:
    """Parameter count of a multi-level CTC model, without allocating it."""
    with torch.device("meta"):
        model = MultiLevelCTC(config, level_to_vocab_size)
    return model.num_parameters()
