"""Static int8 quantisation of an exported graph, calibrated on recitations.

ONNX Runtime's static quantisation (QDQ format: QuantizeLinear/DequantizeLinear pairs that both
ONNX Runtime and OpenVINO run as int8 kernels) quantises the weights per channel and the
activations per tensor, their ranges measured by running the float32 graph over calibration
audio: recitations, cut in windows of the length serving uses. Only the matrix products with a
constant weight are quantised: the attention products and the additive masks (whose padding value
is the float32 minimum) keep float32, where one range for every input would lose them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from services.common import audio
from services.common.errors import FailedPrecondition

from .checkpoint import CheckpointFiles
from .graph_names import INPUT_NAMES

# Calibration windows: as long as serving's windows at most, so the ranges are serving's.
WINDOW_S = 20.0
SAMPLE_RATE = 16_000


def calibration_windows(paths: Sequence[Path], window_s: float = WINDOW_S) -> Iterator[np.ndarray]:
    """Every recording decoded to 16 kHz mono, cut into windows of at most `window_s`."""
    step = int(window_s * SAMPLE_RATE)
    for path in paths:
        try:
            samples = audio.decode_bytes(Path(path).read_bytes(), max_duration_s=3600).samples
        except Exception as exc:  # any decoding failure names the file
            raise FailedPrecondition(f"calibration audio {path}: {exc}") from exc
        for start in range(0, samples.size, step):
            piece = samples[start : start + step]
            if piece.size >= SAMPLE_RATE:  # a tail under 1 s adds nothing a window has not
                yield piece


class _Reader:
    """onnxruntime's CalibrationDataReader: one window's features at a time."""

    def __init__(self, files: CheckpointFiles, paths: Sequence[Path]) -> None:
        from .features import FeatureExtractor

        self._extractor = FeatureExtractor(files.preprocessor_config)
        self._windows = calibration_windows(paths)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        wave = next(self._windows, None)
        if wave is None:
            return None
        batch = self._extractor.extract([wave])
        self.count += 1
        return {
            INPUT_NAMES[0]: batch.features.numpy().astype(np.float32),
            INPUT_NAMES[1]: batch.attention_mask.numpy().astype(np.int64),
            INPUT_NAMES[2]: batch.input_frames.numpy().astype(np.int64),
        }


# Graphs past this (with their external data) are quantised with external data.
_EXTERNAL_ABOVE = 1 << 30


def _size(graph: Path) -> int:
    return sum(p.stat().st_size for p in graph.parent.iterdir() if p.name.startswith(graph.name))


def quantize_static_int8(source: Path, target: Path, files: CheckpointFiles, paths: Sequence[Path]) -> int:
    """Writes the static int8 graph of `source` at `target`; returns the windows calibrated on."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not paths:
        raise FailedPrecondition("static int8 needs calibration recordings")
    reader = _Reader(files, paths)
    quantize_static(
        str(source),
        str(target),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        # Over protobuf's 2 GB (the full model in float32, and the calibration copy of it): the
        # weights go to a side file, as the float32 export's do.
        use_external_data_format=_size(source) > _EXTERNAL_ABOVE,
        # MinMax keeps only each tensor's reduced min and max per window (small even for the
        # full model). Not CalibMaxIntermediateOutputs: onnxruntime drops the windows it clears.
        extra_options={"MatMulConstBOnly": True},
    )
    if reader.count == 0:
        raise FailedPrecondition("the calibration recordings held no window of 1 s or more")
    return reader.count
