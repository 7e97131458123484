"""Resolving checkpoints: local directories, hub ids without a route to the hub, bad checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.asr.checkpoint import CheckpointFiles, resolve_checkpoint
from services.asr.weights import load_multilevel_ctc
from services.common.errors import FailedPrecondition, Unavailable


def test_local_directory(tiny_checkpoint: Path, tiny_files: CheckpointFiles) -> None:
    assert tiny_files.kind == "multi_level_ctc"
    assert tiny_files.directory == tiny_checkpoint.resolve()
    assert tiny_files.config["model_type"] == "multi_level_ctc"
    assert tiny_files.vocab["phonemes"]["[PAD]"] == 0 and len(tiny_files.vocab["phonemes"]) == 43
    assert tiny_files.preprocessor_config["padding_value"] == 1.0
    assert tiny_files.weight_files == (tiny_checkpoint.resolve() / "model.safetensors",)
    assert tiny_files.dev_weights
    assert len(tiny_files.weights_digest) == 16
    assert tiny_files.version == f"{tiny_files.name}@{tiny_files.weights_digest}+dev"


def test_digest_follows_the_weights(tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "copy"))
    first = resolve_checkpoint(str(copy)).weights_digest
    assert resolve_checkpoint(str(tiny_checkpoint)).weights_digest == first
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert resolve_checkpoint(str(copy)).weights_digest != first


def test_sharded_weights_are_found(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "sharded"))
    state = load_file(str(copy / "model.safetensors"))
    (copy / "model.safetensors").unlink()
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(copy / shard))
        weight_map.update(dict.fromkeys(keys, shard))
    (copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    files = resolve_checkpoint(str(copy))
    assert [p.name for p in files.weight_files] == sorted(halves)
    assert load_multilevel_ctc(files, "cpu", "float32").num_parameters() == sum(t.numel() for t in state.values())


def test_unreachable_hub_id_says_how_to_fix_it() -> None:
    # Not a real repository: with or without a route to the hub this cannot resolve.
    with pytest.raises(Unavailable) as caught:
        resolve_checkpoint("muaalem-mesh-tests/no-such-model")
    message = caught.value.message
    assert "hf download muaalem-mesh-tests/no-such-model --local-dir DIR" in message
    assert "MUAALEM_ASR_MODEL=DIR" in message
    assert "muaalem dev-model" in message
    with pytest.raises(Unavailable, match="MUAALEM_SEGMENTER_MODEL=DIR"):
        resolve_checkpoint("muaalem-mesh-tests/no-such-segmenter", "frame_classifier")


def test_missing_paths_and_files(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="is not a directory"):
        resolve_checkpoint(str(tmp_path / "absent"))
    with pytest.raises(Unavailable, match="no checkpoint was configured"):
        resolve_checkpoint("")
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "no-weights"))
    (copy / "model.safetensors").unlink()
    with pytest.raises(Unavailable, match=r"model\.safetensors"):
        resolve_checkpoint(str(copy))
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "no-vocab"))
    (copy / "vocab.json").unlink()
    with pytest.raises(Unavailable, match=r"vocab\.json is missing"):
        resolve_checkpoint(str(copy))


def test_wrong_kind_and_inconsistent_files(
    tiny_checkpoint: Path, tiny_segmenter_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(FailedPrecondition, match="multi_level_ctc"):
        resolve_checkpoint(str(tiny_segmenter_checkpoint))
    with pytest.raises(FailedPrecondition, match="Wav2Vec2BertForAudioFrameClassification"):
        resolve_checkpoint(str(tiny_checkpoint), "frame_classifier")
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "bad-vocab"))
    vocab = json.loads((copy / "vocab.json").read_text())
    del vocab["phonemes"]["ؙ"]
    (copy / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(FailedPrecondition, match="level 'phonemes'"):
        resolve_checkpoint(str(copy))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    (copy / "vocab.json").write_text((tiny_checkpoint / "vocab.json").read_text())
    with pytest.raises(FailedPrecondition, match="shape"):
        load_multilevel_ctc(resolve_checkpoint(str(copy)), "cpu", "float32")
    (copy / "config.json").write_text("{not json")
    with pytest.raises(FailedPrecondition, match="not readable JSON"):
        resolve_checkpoint(str(copy))
