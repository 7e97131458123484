"""Dev checkpoints: the real format, deterministic random weights, the `muaalem dev-model` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.asr.checkpoint import DEV_MARKER, resolve_checkpoint
from services.asr.devmodel import multilevel_ctc_config, segmenter_config, write_dev_checkpoint
from services.asr.vocab import Vocabulary, build_vocab_table
from services.cli import main

# domain.md's table of vocabulary sizes (blank included).
SIZES = {
    "phonemes": 43, "hams_or_jahr": 3, "shidda_or_rakhawa": 4, "tafkheem_or_taqeeq": 4, "itbaq": 3,
    "safeer": 3, "qalqla": 3, "tikraar": 3, "tafashie": 3, "istitala": 3, "ghonna": 3,
}


def test_format_of_a_dev_checkpoint(tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["model_type"] == "multi_level_ctc"
    assert config["architectures"] == ["Wav2Vec2BertForMultilevelCTC"]
    assert config["level_to_vocab_size"] == SIZES
    assert sum(config["level_to_loss_weight"].values()) == 1.0  # exactly: the author's class checks
    assert config["add_adapter"] and config["num_adapter_layers"] == 1 and config["adapter_stride"] == 2
    assert config[DEV_MARKER]["size"] == "tiny"
    assert json.loads((tiny_checkpoint / "preprocessor_config.json").read_text())["padding_value"] == 1.0
    vocab = json.loads((tiny_checkpoint / "vocab.json").read_text())
    assert vocab == build_vocab_table()
    tokens = Vocabulary.from_table(vocab).tokens["phonemes"]
    assert tokens[:3] == ("[PAD]", "ء", "ب") and tokens[29] == "ا" and tokens[42] == "ؙ"
    assert Vocabulary.from_table(vocab).labels["tafkheem_or_taqeeq"] == ("[PAD]", "mofakham", "moraqaq", "low_mofakham")
    assert vocab["hams_or_jahr"] == {"[PAD]": 0, "[همس]": 1, "[جهر]": 2}


def test_full_size_shape() -> None:
    config = multilevel_ctc_config("full")
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (1024, 24, 16)
    assert (config["intermediate_size"], config["conv_depthwise_kernel_size"]) == (4096, 31)
    assert (config["left_max_position_embeddings"], config["right_max_position_embeddings"]) == (64, 8)
    segmenter = segmenter_config("full")
    assert not segmenter["add_adapter"] and segmenter["id2label"] == {"0": "silence", "1": "speech"}
    with pytest.raises(ValueError, match="size"):
        multilevel_ctc_config("huge")


def test_weights_are_a_function_of_the_seed(tiny_checkpoint: Path, tmp_path: Path) -> None:
    same = write_dev_checkpoint(tmp_path / "same", "tiny", seed=0)
    other = write_dev_checkpoint(tmp_path / "other", "tiny", seed=1)
    weights = (tiny_checkpoint / "model.safetensors").read_bytes()
    assert (same / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights


def test_dev_model_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-model", str(tmp_path / "ctc"), "--size", "tiny", "--seed", "3"]) == 0
    assert main(["dev-model", str(tmp_path / "seg"), "--segmenter"]) == 0
    assert "random-weight" in capsys.readouterr().out
    ctc = resolve_checkpoint(str(tmp_path / "ctc"))
    assert ctc.dev_weights and ctc.config[DEV_MARKER]["seed"] == 3
    segmenter = resolve_checkpoint(str(tmp_path / "seg"), "frame_classifier")
    assert segmenter.dev_weights and not segmenter.vocab
