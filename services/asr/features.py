"""Input features of the Wav2Vec2-BERT models, vectorised in torch (on the model's device).

The same numbers as transformers' `SeamlessM4TFeatureExtractor` (which loops over frames in
numpy): Kaldi-style 80-bin log-mel filterbanks of 25 ms frames every 10 ms (samples scaled to
16-bit range, DC offset removed per frame, pre-emphasis 0.97, Povey window, 512-point FFT, power,
Kaldi mel scale triangles between 20 Hz and 8 kHz, floor at float32 epsilon, natural log), each
utterance normalised per mel bin over its own frames (unbiased variance), the batch padded with
`padding_value` to an even frame count, and pairs of frames stacked into 160-dim vectors (one per
20 ms). A stacked frame is valid when its second half is a real frame, so an utterance with an
odd number of frames ends with one masked stacked frame, as in the reference.

Frames and their spectrum are computed in float64, as the reference does: a float32 FFT puts
its rounding noise (relative to the whole frame's energy) into the quiet high-frequency bins,
where the logarithm magnifies it (measured: 3e-3 off instead of 2e-6). The mel sums of the
power spectrum are in float32.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from services.common.errors import FailedPrecondition, InvalidArgument

SAMPLING_RATE = 16_000
FRAME_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
FFT_LENGTH = 512
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon, as Kaldi
MIN_FREQUENCY = 20.0
# Frames transformed at a time: 5 s keeps the float64 temporaries in cache (measured 3-5x
# faster per frame than whole 30 s inputs on CPU).
_BLOCK_FRAMES = 512


def fbank_frames(num_samples: int) -> int:
    """Kaldi frames (25 ms window, 10 ms hop, no padding) in num_samples."""
    if num_samples < FRAME_LENGTH:
        return 0
    return 1 + (num_samples - FRAME_LENGTH) // HOP_LENGTH


def _kaldi_mel(freq: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + freq / 700.0)


def kaldi_mel_filters(num_bins: int, sampling_rate: int) -> np.ndarray:
    """(FFT_LENGTH // 2 + 1, num_bins) triangles, linear in the Kaldi mel scale."""
    edges = np.linspace(
        _kaldi_mel(np.array(MIN_FREQUENCY)), _kaldi_mel(np.array(sampling_rate / 2.0)), num_bins + 2
    )
    bin_width = sampling_rate / FFT_LENGTH
    fft_mels = _kaldi_mel(bin_width * np.arange(FFT_LENGTH // 2 + 1))
    offsets = edges[None, :] - fft_mels[:, None]
    widths = np.diff(edges)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(rising, falling))


def povey_window(length: int = FRAME_LENGTH) -> np.ndarray:
    """Kaldi's Povey window: a symmetric Hann window to the power 0.85."""
    return np.power(np.hanning(length), 0.85)


@dataclass(frozen=True)
class Statistics:
    """Per-mel-bin mean and standard deviation (float64, shape (1, mel)) an utterance is
    normalised with: by default its own frames'; the streaming path passes those of the segment
    received so far (services/asr/streaming.py)."""

    mean: Tensor
    std: Tensor


@dataclass(frozen=True)
class FeatureBatch:
    """features (B, T, 160) float32; attention_mask (B, T) int64 (1 valid); input_frames (B,)
    int64: frames each item has alone (its valid frames, plus the half-padding frame an odd
    Kaldi frame count leaves), which the model's adapter needs to treat a batch as each item alone.
    """

    features: Tensor
    attention_mask: Tensor
    input_frames: Tensor


class FeatureExtractor:
    """waves (16 kHz mono float) -> (features (B, T, 160) float32, attention_mask (B, T) int64)."""

    def __init__(self, preprocessor_config: Mapping[str, Any], device: str = "cpu") -> None:
        config = dict(preprocessor_config)
        kind = config.get("feature_extractor_type", "SeamlessM4TFeatureExtractor")
        if kind != "SeamlessM4TFeatureExtractor":
            raise FailedPrecondition(
                f"preprocessor_config.json names {kind!r}; only SeamlessM4TFeatureExtractor is implemented"
            )
        self.sampling_rate = int(config.get("sampling_rate", SAMPLING_RATE))
        if self.sampling_rate != SAMPLING_RATE:
            raise FailedPrecondition(f"sampling_rate {self.sampling_rate} (expected {SAMPLING_RATE})")
        self.num_mel_bins = int(config.get("num_mel_bins", config.get("feature_size", 80)))
        self.stride = int(config.get("stride", 2))
        # transformers 5.x defaults it to 0.0; the Muaalem checkpoints write 1.0.
        self.padding_value = float(config.get("padding_value", 0.0))
        self.device = torch.device(device)
        self._mel = torch.from_numpy(kaldi_mel_filters(self.num_mel_bins, self.sampling_rate)).to(
            self.device, torch.float32
        )
        self._window = torch.from_numpy(povey_window()).to(self.device)

    @property
    def min_samples(self) -> int:
        """Shortest input that yields one valid feature frame."""
        return FRAME_LENGTH + (self.stride - 1) * HOP_LENGTH

    def __call__(self, waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """(features, attention_mask), as SeamlessM4TFeatureExtractor returns them."""
        batch = self.extract(waves)
        return batch.features, batch.attention_mask

    def extract(self, waves: Sequence[np.ndarray]) -> FeatureBatch:
        if len(waves) == 0:
            raise InvalidArgument("no audio to extract features from")
        arrays = [self._check(i, wave) for i, wave in enumerate(waves)]
        counts = [fbank_frames(a.size) for a in arrays]
        return self._batch(self._log_mel(arrays, counts), counts, None)

    def log_mel_frames(self, wave: np.ndarray) -> Tensor:
        """(F, mel) log-mel energies of one wave before normalisation, F = fbank_frames(len).

        Frame i reads samples [160 i, 160 i + 400) only, so the frames of a wave are the frames
        of its pieces laid end to end (pieces that start on a hop and overlap by 240 samples):
        the streaming path computes them once, as the audio arrives. Fewer than 400 samples
        give no frame.
        """
        array = np.asarray(wave, dtype=np.float32)
        if array.ndim != 1 or not np.isfinite(array).all():
            raise InvalidArgument("log-mel frames need finite mono samples")
        count = fbank_frames(array.size)
        if count == 0:
            return torch.zeros((0, self.num_mel_bins), dtype=torch.float32, device=self.device)
        return self._log_mel([array], [count])[0]

    def statistics(self, log_mel: Tensor) -> Statistics:
        """What `extract` normalises an utterance with, from its (F, mel) log-mel frames."""
        count = int(log_mel.shape[0])
        if count < 2:
            raise InvalidArgument(f"normalisation statistics need at least 2 frames, got {count}")
        values = log_mel.to(torch.float64)
        mean = values.sum(dim=0, keepdim=True) / count
        variance = ((values - mean) ** 2).sum(dim=0, keepdim=True) / (count - 1)
        return Statistics(mean, torch.sqrt(variance + 1e-7))

    def from_log_mel(self, log_mel: Tensor, statistics: Statistics | None = None) -> FeatureBatch:
        """The batch of one utterance given its (F, mel) log-mel frames, normalised with
        `statistics` (default: its own, which is exactly what `extract` gives for the wave)."""
        count = int(log_mel.shape[0])
        if count < self.stride:
            raise InvalidArgument(f"{count} log-mel frame(s) make no feature frame (at least {self.stride})")
        return self._batch(log_mel[None], [count], [statistics] if statistics is not None else None)

    def _batch(self, logmel: Tensor, counts: list[int], statistics: list[Statistics] | None) -> FeatureBatch:
        features, mask = self._normalise_pad_stack(logmel, counts, statistics)
        extents = torch.tensor(
            [math.ceil(count / self.stride) for count in counts], dtype=torch.int64, device=self.device
        )
        return FeatureBatch(features, mask, extents)

    def _check(self, index: int, wave: np.ndarray) -> np.ndarray:
        array = np.asarray(wave, dtype=np.float32)
        if array.ndim != 1:
            raise InvalidArgument(f"audio {index}: expected mono samples, got shape {array.shape}")
        if array.size < self.min_samples:
            raise InvalidArgument(
                f"audio {index}: {array.size} samples is too short; at least {self.min_samples} "
                f"({1000 * self.min_samples / self.sampling_rate:.0f} ms) make one feature frame"
            )
        if not np.isfinite(array).all():
            raise InvalidArgument(f"audio {index}: samples contain NaN or infinity")
        return array

    def _log_mel(self, arrays: list[np.ndarray], counts: list[int]) -> Tensor:
        """(B, F_max, mel) log-mel energies, zero past each item's own frames.

        Item by item (each vectorised over its frames): a padded batch would transform the
        padding too, and its float64 temporaries would no longer fit in cache.
        """
        out = torch.zeros(
            (len(arrays), max(counts), self.num_mel_bins), dtype=torch.float32, device=self.device
        )
        for row, array, count in zip(out, arrays, counts, strict=True):
            # float32 samples scaled in float32 as the reference does, then float64.
            wave = torch.from_numpy(array * np.float32(2**15)).to(self.device, torch.float64)
            frames = wave.unfold(0, FRAME_LENGTH, HOP_LENGTH)
            for start in range(0, count, _BLOCK_FRAMES):
                stop = min(start + _BLOCK_FRAMES, count)
                row[start:stop] = self._block_log_mel(frames[start:stop])
        return out

    def _block_log_mel(self, frames: Tensor) -> Tensor:
        frames = frames - frames.mean(dim=-1, keepdim=True)
        emphasised = torch.cat(
            (frames[:, :1] * (1.0 - PREEMPHASIS), frames[:, 1:] - PREEMPHASIS * frames[:, :-1]),
            dim=-1,
        )
        spectrum = torch.fft.rfft(emphasised * self._window, n=FFT_LENGTH)
        power = (spectrum.real.square() + spectrum.imag.square()).to(torch.float32)
        # A sum of positive terms: float32 keeps its relative precision.
        return torch.matmul(power, self._mel).clamp_min(MEL_FLOOR).log()

    def _normalise_pad_stack(
        self, logmel: Tensor, counts: list[int], statistics: list[Statistics] | None = None
    ) -> tuple[Tensor, Tensor]:
        batch, longest, bins = logmel.shape
        lengths = torch.tensor(counts, device=self.device)
        valid = torch.arange(longest, device=self.device)[None, :] < lengths[:, None]
        values = logmel.to(torch.float64)
        if statistics is None:
            weights = valid[..., None].to(torch.float64)
            n = lengths.to(torch.float64)[:, None, None]
            mean = (values * weights).sum(dim=1, keepdim=True) / n
            variance = (((values - mean) * weights) ** 2).sum(dim=1, keepdim=True) / (n - 1)
            std = torch.sqrt(variance + 1e-7)
        else:
            mean = torch.stack([s.mean for s in statistics])
            std = torch.stack([s.std for s in statistics])
        normalised = ((values - mean) / std).to(torch.float32)
        padded_length = self.stride * math.ceil(longest / self.stride)
        features = torch.full(
            (batch, padded_length, bins), self.padding_value, dtype=torch.float32, device=self.device
        )
        features[:, :longest] = torch.where(valid[..., None], normalised, features[:, :longest])
        mask = torch.zeros((batch, padded_length), dtype=torch.int64, device=self.device)
        mask[:, :longest] = valid.to(torch.int64)
        stacked = features.reshape(batch, padded_length // self.stride, bins * self.stride)
        return stacked, mask[:, self.stride - 1 :: self.stride].contiguous()
