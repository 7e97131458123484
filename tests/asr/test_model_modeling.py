"""The pure-torch Wav2Vec2-BERT against transformers 5.x, attention forms, padding, precisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.asr.checkpoint import CheckpointFiles, resolve_checkpoint
from services.asr.chunking import FrameGeometry
from services.asr.devmodel import PREPROCESSOR_CONFIG, multilevel_ctc_config, segmenter_config
from services.asr.features import FeatureExtractor, fbank_frames
from services.asr.modeling import EncoderConfig, FrameClassifier, MultiLevelCTC
from services.asr.weights import count_parameters, load_frame_classifier, load_multilevel_ctc, resolve_precision
from services.common.errors import FailedPrecondition
from tests.asr.conftest import geometry, output_lengths

_NOT_ENCODER = ("architectures", "model_type", "level_to_vocab_size", "level_to_loss_weight", "muaalem_dev_checkpoint")


def _hf_config(config: dict[str, Any]) -> Any:
    from transformers import Wav2Vec2BertConfig

    return Wav2Vec2BertConfig(**{k: v for k, v in config.items() if k not in _NOT_ENCODER})


def _padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 120, 160, generator=generator)
    mask = torch.ones(3, 120, dtype=torch.int64)
    mask[1, 97:] = 0
    mask[2, 40:] = 0
    return features, mask


@torch.no_grad()
def test_backbone_matches_transformers(tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC) -> None:
    from safetensors.torch import load_file
    from transformers import Wav2Vec2BertModel

    reference = Wav2Vec2BertModel(_hf_config(tiny_files.config)).eval()
    state = load_file(str(tiny_files.weight_files[0]))
    prefix = "wav2vec2_bert."
    reference.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    features, mask = _padded_batch()
    expected = reference(features, attention_mask=mask).last_hidden_state
    logits = tiny_model(features, mask)
    lengths = output_lengths(geometry(tiny_files), mask.sum(dim=1))
    assert lengths == [60, 49, 20]
    for level in tiny_model.levels:
        head = torch.nn.functional.linear(
            expected, state[f"level_to_lm_head.{level}.weight"], state[f"level_to_lm_head.{level}.bias"]
        )
        for item, length in enumerate(lengths):
            torch.testing.assert_close(logits[level][item, :length], head[item, :length], atol=1e-5, rtol=0)


@torch.no_grad()
def test_frame_classifier_saved_by_transformers(tmp_path: Path) -> None:
    from transformers import Wav2Vec2BertForAudioFrameClassification

    config = _hf_config(segmenter_config("tiny"))
    config.num_labels = 2
    config.architectures = ["Wav2Vec2BertForAudioFrameClassification"]
    torch.manual_seed(0)
    reference = Wav2Vec2BertForAudioFrameClassification(config).eval()
    reference.save_pretrained(str(tmp_path))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG))
    files = resolve_checkpoint(str(tmp_path), "frame_classifier")
    assert not files.dev_weights
    model = load_frame_classifier(files, "cpu", "float32")
    features, mask = _padded_batch(1)
    expected = reference(features, attention_mask=mask).logits
    logits = model(features, mask)
    assert logits.shape == (3, 120, 2) and logits.dtype == torch.float32
    for item, length in enumerate(mask.sum(dim=1).tolist()):
        torch.testing.assert_close(logits[item, :length], expected[item, :length], atol=1e-5, rtol=0)


@torch.no_grad()
def test_fast_attention_equals_the_reference_form(tiny_model: MultiLevelCTC, tiny_geometry: FrameGeometry) -> None:
    # 800 frames: distances far past the clamps (left 64, right 8) on both sides.
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 800, 160, generator=generator)
    mask = torch.ones(2, 800, dtype=torch.int64)
    mask[1, 555:] = 0
    fast = tiny_model(features, mask)
    tiny_model.set_attention_impl("reference")
    try:
        slow = tiny_model(features, mask)
    finally:
        tiny_model.set_attention_impl("fast")
    lengths = output_lengths(tiny_geometry, mask.sum(dim=1))
    for level in tiny_model.levels:
        for item, length in enumerate(lengths):
            torch.testing.assert_close(fast[level][item, :length], slow[level][item, :length], atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="fast"):
        tiny_model.set_attention_impl("flash")  # type: ignore[arg-type]


@torch.no_grad()
def test_a_padded_batch_equals_each_item_alone(tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC) -> None:
    extractor = FeatureExtractor(tiny_files.preprocessor_config)
    rng = np.random.default_rng(0)
    # Kaldi frame counts 98..103 and 148, 48: every parity of frames and of valid lengths.
    sizes = [16_000 + 160 * k for k in range(6)] + [24_000, 8_000]
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in sizes]
    batch = extractor.extract(waves)
    together = tiny_model(batch.features, batch.attention_mask, batch.input_frames)
    leaky = tiny_model(batch.features, batch.attention_mask)
    lengths = output_lengths(geometry(tiny_files), batch.attention_mask.sum(dim=1))
    leaked = []
    for item, wave in enumerate(waves):
        features, mask = extractor([wave])
        alone = tiny_model(features, mask)
        length = lengths[item]
        assert alone["phonemes"].shape[1] >= length
        for level in tiny_model.levels:
            torch.testing.assert_close(together[level][item, :length], alone[level][0, :length], atol=1e-5, rtol=0)
        if not torch.allclose(leaky["phonemes"][item, :length], alone["phonemes"][0, :length], atol=1e-5):
            leaked.append(fbank_frames(wave.size))
    # Without input_frames the adapter reads the first masked frame, as the reference does:
    # it changes exactly the items with an even Kaldi frame count and an odd valid length.
    assert leaked == [n for n in (fbank_frames(s) for s in sizes) if n % 4 == 2]


def test_output_lengths(tiny_model: MultiLevelCTC, tiny_geometry: FrameGeometry) -> None:
    assert tiny_geometry.output_frames_from_features(249) == 125  # 5 s -> 125 frames of 40 ms
    assert tiny_geometry.output_frames_from_features(749) == 375
    assert output_lengths(tiny_geometry, [1, 2, 3, 438]) == [1, 1, 2, 219]
    assert tiny_model.config.frame_stride == 2
    features = torch.zeros(1, 438, 160)
    assert tiny_model(features, torch.ones(1, 438))["phonemes"].shape == (1, 219, 43)


@torch.no_grad()
def test_precisions(tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC) -> None:
    features, mask = _padded_batch(3)
    reference = tiny_model(features, mask)["phonemes"]
    bf16 = load_multilevel_ctc(tiny_files, "cpu", "bfloat16")
    assert bf16.dtype == torch.bfloat16
    out = bf16(features, mask)["phonemes"]
    assert out.dtype == torch.float32
    assert (out - reference).abs().max() < 0.2
    int8 = load_multilevel_ctc(tiny_files, "cpu", "int8")
    out = int8(features, mask)["phonemes"]
    # Item 0 has no padding (padded frames carry no meaning to compare).
    assert out.shape == reference.shape and (out[0] - reference[0]).abs().max() < 0.5
    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("auto", "cuda:0") == "float16"
    with pytest.raises(FailedPrecondition, match="float16 is for CUDA"):
        load_multilevel_ctc(tiny_files, "cpu", "float16")
    with pytest.raises(FailedPrecondition, match="CPU only"):
        resolve_precision("int8", "cuda")
    with pytest.raises(FailedPrecondition, match="float64"):
        resolve_precision("float64", "cpu")


def test_full_size_parameter_count() -> None:
    config = multilevel_ctc_config("full")
    count = count_parameters(EncoderConfig.from_config(config), config["level_to_vocab_size"])
    assert 600e6 < count < 612e6  # ~606 M with the adapter


def test_unsupported_architectures_are_refused() -> None:
    config = multilevel_ctc_config("tiny")
    with pytest.raises(FailedPrecondition, match="rotary"):
        EncoderConfig.from_config({**config, "position_embeddings_type": "rotary"})
    with pytest.raises(FailedPrecondition, match="gelu_pytorch_tanh"):
        EncoderConfig.from_config({**config, "hidden_act": "gelu_pytorch_tanh"})


@torch.no_grad()
def test_segmenter_runs(tiny_segmenter: FrameClassifier, tiny_segmenter_checkpoint: Path) -> None:
    features, mask = _padded_batch(4)
    logits = tiny_segmenter(features, mask)
    assert logits.shape == (3, 120, 2)
    assert tiny_segmenter.dev_weights and tiny_segmenter.version.endswith("+dev")
    files = resolve_checkpoint(str(tiny_segmenter_checkpoint), "frame_classifier")
    assert output_lengths(geometry(files), [7]) == [7]
