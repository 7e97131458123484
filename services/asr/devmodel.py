"""Random-weight checkpoints in exactly the real formats, for tests (tiny) and benchmarks (full).

The real weights cannot be downloaded here. A dev checkpoint has the files and key names of the
real one (config.json, model.safetensors, vocab.json from quran-transcript's definitions,
preprocessor_config.json with padding_value 1.0), so every code path runs on it; config.json
carries a `muaalem_dev_checkpoint` entry so that anything it produces is marked as dev output.
Weights are a function of the seed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from .checkpoint import DEV_MARKER
from .modeling import EncoderConfig, FrameClassifier, MultiLevelCTC
from .vocab import Vocabulary

SIZES = ("tiny", "full")

# w2v-bert-2.0 (the shape of obadx/muaalem-model-v3_2 and of the segmenter).
_FULL: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
# Small enough to build and run in milliseconds, still every kind of layer.
_TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}

# Weights the author's config class accepts: it rejects a sum over 1 (even by rounding), so
# binary fractions that sum to exactly 1.
_PHONEME_LOSS_WEIGHT = 0.375

PREPROCESSOR_CONFIG: dict[str, Any] = {
    "feature_extractor_type": "SeamlessM4TFeatureExtractor",
    "feature_size": 80,
    "num_mel_bins": 80,
    "padding_side": "right",
    "padding_value": 1.0,
    "processor_class": "Wav2Vec2BertProcessor",
    "return_attention_mask": True,
    "sampling_rate": 16000,
    "stride": 2,
}


def _encoder_config(size: str, *, adapter: bool) -> dict[str, Any]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    shape = _FULL if size == "full" else _TINY
    return {
        **shape,
        "feature_projection_input_dim": 160,
        "hidden_act": "swish",
        "hidden_dropout": 0.0,
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
        "feat_proj_dropout": 0.0,
        "final_dropout": 0.1,
        "layerdrop": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "apply_spec_augment": True,
        "mask_time_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
        "use_weighted_layer_sum": False,
        "classifier_proj_size": 768,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "add_adapter": adapter,
        "adapter_kernel_size": 3,
        "adapter_stride": 2,
        "num_adapter_layers": 1,
        "adapter_act": "relu",
        "use_intermediate_ffn_before_adapter": False,
        "output_hidden_size": shape["hidden_size"],
        "position_embeddings_type": "relative_key",
        "rotary_embedding_base": 10000,
        "max_source_positions": 5000,
        "left_max_position_embeddings": 64,
        "right_max_position_embeddings": 8,
        "conv_depthwise_kernel_size": 31,
        "conformer_conv_dropout": 0.1,
        "torch_dtype": "float32",
    }


def multilevel_ctc_config(size: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """config.json of a dev multi-level CTC checkpoint (the author's format plus the dev marker)."""
    vocab = Vocabulary.from_quran_transcript()
    sifa_weight = (1.0 - _PHONEME_LOSS_WEIGHT) / len(vocab.sifa_levels)
    return {
        "architectures": ["Wav2Vec2BertForMultilevelCTC"],
        "model_type": "multi_level_ctc",
        **_encoder_config(size, adapter=True),
        "level_to_vocab_size": {level: vocab.size(level) for level in vocab.levels},
        "level_to_loss_weight": {
            level: (_PHONEME_LOSS_WEIGHT if level == "phonemes" else sifa_weight)
            for level in vocab.levels
        },
        DEV_MARKER: _marker(size, seed),
    }


def segmenter_config(size: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """config.json of a dev recitation-segmenter-v2 style frame classifier."""
    return {
        "architectures": ["Wav2Vec2BertForAudioFrameClassification"],
        "model_type": "wav2vec2-bert",
        **_encoder_config(size, adapter=False),
        "id2label": {"0": "silence", "1": "speech"},
        "label2id": {"silence": 0, "speech": 1},
        DEV_MARKER: _marker(size, seed),
    }


def _marker(size: str, seed: int) -> dict[str, Any]:
    return {
        "size": size,
        "seed": seed,
        "note": "random weights written by `muaalem dev-model`: outputs mean nothing",
    }


def write_dev_checkpoint(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Writes a random-weight multi_level_ctc checkpoint into out_dir; returns the directory."""
    config = multilevel_ctc_config(size, seed)
    with torch.device("meta"):
        model = MultiLevelCTC(EncoderConfig.from_config(config), config["level_to_vocab_size"])
    out = _prepare(out_dir)
    _write_json(out / "vocab.json", Vocabulary.from_quran_transcript().to_table())
    _write(out, config, _random_state(model.state_dict(), seed))
    return out


def write_dev_segmenter(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Writes a random-weight frame-classifier (segmenter) checkpoint into out_dir."""
    config = segmenter_config(size, seed)
    with torch.device("meta"):
        model = FrameClassifier(EncoderConfig.from_config(config), 2)
    out = _prepare(out_dir)
    _write(out, config, _random_state(model.state_dict(), seed))
    return out


def _prepare(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_checkpoint_files(
    out_dir: str | Path, config: dict[str, Any], state: dict[str, torch.Tensor], vocab: dict[str, dict[str, int]]
) -> Path:
    """Writes a multi_level_ctc checkpoint (trained weights too: the demo model) in the real format."""
    out = _prepare(out_dir)
    _write_json(out / "vocab.json", vocab)
    _write(out, config, state)
    return out


def _write(out: Path, config: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", config)
    _write_json(out / "preprocessor_config.json", PREPROCESSOR_CONFIG)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _random_state(shapes: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Scale-preserving random weights (so activations neither vanish nor explode)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name in sorted(shapes):
        shape = shapes[name].shape
        leaf = name.rsplit(".", 1)[-1]
        if "layer_norm" in name and leaf == "weight":
            tensor = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif leaf == "bias":
            tensor = 0.02 * torch.randn(shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            tensor = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        state[name] = tensor.contiguous()
    return state
