"""The torch feature extractor against transformers' SeamlessM4TFeatureExtractor on real audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.asr.devmodel import PREPROCESSOR_CONFIG
from services.asr.features import FeatureExtractor, fbank_frames
from services.asr.loading import geometry_of
from services.common.errors import FailedPrecondition, InvalidArgument

# Observed: 2e-6 (float32 rounding of normalised log-mel values around unit scale).
TOLERANCE = 2e-5


def _reference(waves: list[np.ndarray], padding_value: float) -> tuple[np.ndarray, np.ndarray]:
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor(padding_value=padding_value)
    out = extractor(waves, sampling_rate=16_000, return_tensors="np")
    return out["input_features"], out["attention_mask"]


def _assert_same(waves: list[np.ndarray], padding_value: float = 1.0) -> None:
    features, mask = FeatureExtractor({**PREPROCESSOR_CONFIG, "padding_value": padding_value})(waves)
    expected_features, expected_mask = _reference(waves, padding_value)
    assert features.shape == expected_features.shape
    assert features.dtype == torch.float32 and mask.dtype == torch.int64
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    np.testing.assert_allclose(features.numpy(), expected_features, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["test.wav", "002282_15.wav", "fatiha_long_track.wav"])
def test_single_recording_matches_transformers(recordings: dict[str, np.ndarray], name: str) -> None:
    _assert_same([recordings[name]])


def test_padded_batch_matches_transformers(recordings: dict[str, np.ndarray]) -> None:
    waves = list(recordings.values())
    # Kaldi frame counts of both parities: the half-padded last frame is masked in both.
    waves += [waves[0][:16_000], waves[0][:16_160], waves[1][: 4 * 16_000 + 500]]
    assert {fbank_frames(w.size) % 2 for w in waves} == {0, 1}
    _assert_same(waves)


def test_padding_value_comes_from_the_config(recordings: dict[str, np.ndarray]) -> None:
    waves = [recordings["test.wav"], recordings["test.wav"][:20_000]]
    _assert_same(waves, padding_value=0.0)
    without_padding_value = {k: v for k, v in PREPROCESSOR_CONFIG.items() if k != "padding_value"}
    assert FeatureExtractor(without_padding_value).padding_value == 0.0  # transformers 5.x's default
    features, mask = FeatureExtractor(PREPROCESSOR_CONFIG)(waves)
    assert torch.all(features[1][mask[1] == 0][:, 80:] == 1.0)


def test_frame_arithmetic_and_input_frames() -> None:
    extractor = FeatureExtractor(PREPROCESSOR_CONFIG)
    assert extractor.min_samples == 560
    frames = geometry_of({}, PREPROCESSOR_CONFIG)
    assert frames.feature_frames(5 * 16_000) == 249  # 20 ms per frame
    assert frames.feature_frames(15 * 16_000) == 749
    assert frames.feature_frame_samples / 16_000 == pytest.approx(0.02)
    rng = np.random.default_rng(0)
    odd, even = 16_160, 16_000  # 99 and 98 Kaldi frames
    batch = extractor.extract([rng.standard_normal(n).astype(np.float32) for n in (odd, even)])
    assert batch.attention_mask.sum(dim=1).tolist() == [49, 49]
    assert batch.input_frames.tolist() == [50, 49]
    assert batch.features.shape == (2, 50, 160)


def test_frame_geometry_agrees_with_the_extractor() -> None:
    """Serving takes frame counts from FrameGeometry (CPU arithmetic) and never reads the
    extractor's mask or input_frames back: the two must agree on every parity and remainder."""
    extractor = FeatureExtractor(PREPROCESSOR_CONFIG)
    frames = geometry_of({}, PREPROCESSOR_CONFIG)
    rng = np.random.default_rng(1)
    sizes = [560, 561, 719, 720, 879, 880, 16_000, 16_159, 16_160, 16_320, 16_480, 33_000, 9_120]
    batch = extractor.extract([(0.1 * rng.standard_normal(n)).astype(np.float32) for n in sizes])
    assert batch.attention_mask.sum(dim=1).tolist() == [frames.feature_frames(n) for n in sizes]
    assert batch.input_frames.tolist() == [frames.feature_extent(n) for n in sizes]
    assert batch.features.shape[1] == max(frames.feature_extent(n) for n in sizes)


def test_bad_input_is_named() -> None:
    extractor = FeatureExtractor(PREPROCESSOR_CONFIG)
    with pytest.raises(InvalidArgument, match="too short"):
        extractor([np.zeros(559, dtype=np.float32)])
    extractor([np.zeros(560, dtype=np.float32)])
    samples = np.zeros(16_000, dtype=np.float32)
    samples[100] = np.nan
    with pytest.raises(InvalidArgument, match="NaN"):
        extractor([np.zeros(16_000, dtype=np.float32), samples])
    with pytest.raises(InvalidArgument, match="mono"):
        extractor([np.zeros((2, 16_000), dtype=np.float32)])
    with pytest.raises(InvalidArgument, match="no audio"):
        extractor([])


def test_foreign_preprocessor_configs_are_refused() -> None:
    with pytest.raises(FailedPrecondition, match="WhisperFeatureExtractor"):
        FeatureExtractor({"feature_extractor_type": "WhisperFeatureExtractor"})
    with pytest.raises(FailedPrecondition, match="sampling_rate"):
        FeatureExtractor({**PREPROCESSOR_CONFIG, "sampling_rate": 8000})
