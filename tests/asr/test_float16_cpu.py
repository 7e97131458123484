"""The float16 path on a CPU (test-only switch): no GPU has been lent to run it, so its dtype
and overflow bugs (the additive masks at the dtype's minimum, the relative-position bias, the
layer norms, the adapter's masks) must surface here. torch computes float16 on a CPU correctly,
only slowly; serving refuses it there."""

from __future__ import annotations

import difflib

import numpy as np
import pytest
import torch

from services.asr.checkpoint import CheckpointFiles
from services.asr.decode import greedy_decode
from services.asr.features import FeatureExtractor
from services.asr.modeling import MultiLevelCTC
from services.asr.vocab import Vocabulary
from services.asr.weights import load_multilevel_ctc
from services.common.errors import FailedPrecondition
from tests.asr.conftest import geometry, load_recording, output_lengths


@pytest.fixture(scope="module")
def half_model(tiny_files: CheckpointFiles) -> MultiLevelCTC:
    return load_multilevel_ctc(tiny_files, "cpu", "float16", allow_cpu_float16=True)


def test_serving_still_refuses_float16_on_cpu(tiny_files: CheckpointFiles) -> None:
    with pytest.raises(FailedPrecondition, match="float16 is for CUDA"):
        load_multilevel_ctc(tiny_files, "cpu", "float16")


@torch.no_grad()
def test_float16_log_probs_and_decode_match_float32(
    half_model: MultiLevelCTC, tiny_model: MultiLevelCTC, tiny_files: CheckpointFiles
) -> None:
    assert half_model.dtype == torch.float16
    # A padded batch of real recitation (masks and the adapter's extents in play) and a lone item.
    waves = [load_recording("test.wav"), load_recording("002282_15.wav")[: 16_000 * 6]]
    batch = FeatureExtractor(tiny_files.preprocessor_config).extract(waves)
    lengths = output_lengths(geometry(tiny_files), batch.attention_mask.sum(dim=1))
    full = half_model(batch.features, batch.attention_mask, batch.input_frames)
    reference = tiny_model(batch.features, batch.attention_mask, batch.input_frames)
    vocabulary = Vocabulary.from_checkpoint(tiny_files)
    for item, length in enumerate(lengths):
        half = {level: torch.log_softmax(v[item, :length].float(), -1) for level, v in full.items()}
        single = {level: torch.log_softmax(v[item, :length], -1) for level, v in reference.items()}
        for level, values in half.items():
            assert torch.isfinite(values).all(), f"{level}: float16 overflowed"
            assert (values - single[level]).abs().max() < 0.05, level
            agreement = (values.argmax(-1) == single[level].argmax(-1)).float().mean()
            assert agreement >= 0.98, (level, float(agreement))
        decoded_half = greedy_decode({k: v.numpy() for k, v in half.items()}, vocabulary)
        decoded = greedy_decode({k: v.numpy() for k, v in single.items()}, vocabulary)
        # Random weights leave near-ties between labels, which half precision may flip: a dtype
        # bug garbles the decode, a flip moves a symbol or two.
        similarity = difflib.SequenceMatcher(None, decoded_half.phonemes, decoded.phonemes).ratio()
        assert similarity >= 0.98, (similarity, decoded_half.phonemes, decoded.phonemes)


@torch.no_grad()
def test_float16_padding_does_not_reach_valid_frames(half_model: MultiLevelCTC, tiny_files: CheckpointFiles) -> None:
    """A short item padded far past its end in float16 gives what it gives alone (the masks'
    minimum value must not overflow into NaN when the position bias is added to it)."""
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (48_000, 6_400)]
    extractor = FeatureExtractor(tiny_files.preprocessor_config)
    batch = extractor.extract(waves)
    alone = extractor.extract(waves[1:])
    lengths = output_lengths(geometry(tiny_files), batch.attention_mask.sum(dim=1))
    padded = half_model(batch.features, batch.attention_mask, batch.input_frames)["phonemes"][1, : lengths[1]]
    single = half_model(alone.features, alone.attention_mask, alone.input_frames)["phonemes"][0, : lengths[1]]
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded.float(), single.float(), atol=2e-2, rtol=0)
