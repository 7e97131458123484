"""The model runners the batchers call (in the model worker thread), and batch padding.

A runner takes the features of several pieces, pads them into one batch, runs the model once
and cuts each piece's output back to its own frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from services.asr import chunking, metrics
from services.asr.results import LogProbs, Samples

if TYPE_CHECKING:  # torch-backed modules are imported when the engine loads, not on import
    from torch import Tensor

    from services.asr.features import FeatureBatch, FeatureExtractor


@dataclass(frozen=True)
class ModelInput:
    """One piece's features as the extractor gives them for that piece alone: (T, 160) and its
    (T,) mask, which ends with a masked frame when the piece has an odd number of 10 ms frames
    (the model sees that frame in an unbatched run, so a batch keeps it and tells the model
    each item's extent)."""

    features: Tensor
    mask: Tensor
    valid_frames: int

    @property
    def frames(self) -> int:
        return int(self.features.shape[0])


def model_inputs(
    extractor: FeatureExtractor, geometry: chunking.FrameGeometry, waves: Sequence[Samples]
) -> list[ModelInput]:
    """Features of each wave as it has them alone. Frame counts come from `geometry` (CPU
    arithmetic; tests/asr check it against the extractor's mask and input_frames), so nothing
    is read back from a GPU here."""
    return split_batch(extractor.extract(waves), geometry, [len(wave) for wave in waves])


def split_batch(batch: FeatureBatch, geometry: chunking.FrameGeometry, lengths: Sequence[int]) -> list[ModelInput]:
    """A feature batch cut back into one ModelInput per wave of `lengths` samples."""
    inputs = []
    for row, length in enumerate(lengths):
        own = geometry.feature_extent(length)
        inputs.append(
            ModelInput(
                features=batch.features[row, :own],
                mask=batch.attention_mask[row, :own],
                valid_frames=geometry.feature_frames(length),
            )
        )
    return inputs


def pad_batch(items: Sequence[ModelInput], padding_value: float) -> tuple[Tensor, Tensor]:
    """(B, T, 160) features padded with the extractor's padding value, and the (B, T) mask."""
    import torch

    longest = max(item.frames for item in items)
    first = items[0].features
    batch = first.new_full((len(items), longest, first.shape[1]), padding_value)
    mask = torch.zeros((len(items), longest), dtype=items[0].mask.dtype, device=first.device)
    for row, item in enumerate(items):
        batch[row, : item.frames] = item.features
        mask[row, : item.frames] = item.mask
    return batch, mask


class CtcRunner:
    """The CTC model's batch function (runs in the model worker thread): per-input log-probs,
    cut to each input's own output frames, as float32 numpy on the CPU."""

    def __init__(self, model: Any, geometry: chunking.FrameGeometry, padding_value: float, device: str) -> None:
        self.model = model
        self.geometry = geometry
        self.padding_value = padding_value
        self.device = device

    def __call__(self, items: list[ModelInput]) -> list[LogProbs]:
        import torch

        features, mask = pad_batch(items, self.padding_value)
        # Each item's own extent: the adapter then reads zeros past it, as when it runs alone.
        extents = torch.tensor([item.frames for item in items], dtype=torch.int64)
        with torch.inference_mode():
            logits = self.model(features, mask, input_frames=extents)
            per_level = {
                level: torch.log_softmax(value.float(), dim=-1).cpu().numpy() for level, value in logits.items()
            }
        record_gpu_peak(self.device)
        lengths = [self.geometry.output_frames_from_features(item.valid_frames) for item in items]
        return [
            {level: values[row, :length] for level, values in per_level.items()} for row, length in enumerate(lengths)
        ]


class SegmenterRunner:
    """The segmenter's batch function: frame classifier on features built before queueing,
    argmax per 20 ms frame, cut to each chunk's valid frames."""

    def __init__(self, classifier: Any, padding_value: float, device: str) -> None:
        self.classifier = classifier
        self.padding_value = padding_value
        self.device = device

    def __call__(self, items: list[ModelInput]) -> list[npt.NDArray[np.int64]]:
        import torch

        features, mask = pad_batch(items, self.padding_value)
        with torch.inference_mode():
            logits = self.classifier(features, mask)
            labels = logits.argmax(dim=-1).cpu().numpy()
        record_gpu_peak(self.device)
        return [labels[row, : item.valid_frames].astype(np.int64) for row, item in enumerate(items)]


def record_gpu_peak(device: str) -> None:
    if not device.startswith("cuda"):
        return
    import torch

    metrics.GPU_PEAK_MEMORY.labels(device).set(torch.cuda.max_memory_allocated(device))
    metrics.GPU_MEMORY_TOTAL.labels(device).set(torch.cuda.get_device_properties(device).total_memory)
