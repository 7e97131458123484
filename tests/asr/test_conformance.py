"""Conformance with the model author's own classes (quran-muaalem 0.2.2, transformers 4.57).

bench/peer/setup_env.sh makes .venv-peer (once; it needs PyPI), and bench/peer/reference_outputs.py
builds a small Wav2Vec2BertForMultilevelCTC with the author's classes, saves it as the real
checkpoint is saved, and dumps what the author's `Muaalem` computes on real recitations. This
file loads that checkpoint with services.asr and compares: logits within 1e-4 in float32, and
the same greedy decode (phonemes, ids, probabilities, sifat).

Two documented differences are accounted for, not hidden: quran_muaalem drops a one-frame token
on the last frame after a blank (the comparison feeds both decoders the frames quran_muaalem
actually decodes, and checks that this is the only difference), and where it aligns sifat to the
reference it reports token ids as probabilities and `[PAD]` for unaligned groups (compared as
labels, with None for `[PAD]`).
"""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from services.asr.checkpoint import CheckpointFiles, resolve_checkpoint
from services.asr.decode import DecodeReference, greedy_decode
from services.asr.features import FeatureExtractor
from services.asr.hardware import native_bf16_flags
from services.asr.modeling import MultiLevelCTC
from services.asr.vocab import BLANK_ID, Vocabulary, build_vocab_table
from services.asr.weights import load_multilevel_ctc
from tests.asr.conftest import geometry, load_recording, output_lengths
from tests.conftest import FIXTURES_DIR, REPO

# Setting up the peer environment installs torch and transformers from PyPI (two minutes on a
# fresh clone): make soak runs this file, make test does not.
pytestmark = [pytest.mark.slow, pytest.mark.soak]

PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
LOGIT_TOLERANCE = 1e-4
MOSHAF = {
    "rewaya": "hafs", "madd_monfasel_len": 2, "madd_mottasel_len": 4, "madd_mottasel_waqf": 4, "madd_aared_len": 2,
}


def _clips() -> list[dict[str, Any]]:
    from quran_transcript import Aya

    fixture = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text(encoding="utf-8"))
    return [
        # 8:75 from word 17 into 9:1, the reference the real model was compared with; decoded
        # with more predicted groups than reference groups (positional sifat).
        {"name": "test", "file": "test.wav", "uthmani": fixture["reference"]["uthmani"]},
        # The whole of 2:282 as reference: fewer predicted groups (sifat aligned to it).
        {"name": "ayah_2_282", "file": "002282_15.wav", "uthmani": Aya(2, 282).get().uthmani},
    ]


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    setup = subprocess.run(
        ["bash", str(REPO / "bench" / "peer" / "setup_env.sh")],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    assert setup.returncode == 0, f"bench/peer/setup_env.sh failed:\n{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
    work = tmp_path_factory.mktemp("peer")
    clips = []
    for clip in _clips():
        wave = work / f"{clip['name']}.npy"
        np.save(wave, load_recording(clip["file"]))
        clips.append({"name": clip["name"], "wave": str(wave), "uthmani": clip["uthmani"], "moshaf": MOSHAF})
    (work / "inputs.json").write_text(json.dumps({"clips": clips}, ensure_ascii=False), encoding="utf-8")
    run = subprocess.run(
        [str(PEER_PYTHON), str(REPO / "bench" / "peer" / "reference_outputs.py"),
         str(work / "inputs.json"), str(work / "out"), "--dev-checkpoint", str(tiny_checkpoint)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, f"reference_outputs.py failed:\n{run.stderr[-3000:]}"
    return work / "out"


@pytest.fixture(scope="module")
def arrays(peer: Path) -> dict[str, np.ndarray]:
    with np.load(peer / "arrays.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def author_files(peer: Path) -> CheckpointFiles:
    return resolve_checkpoint(str(peer / "checkpoint"))


@pytest.fixture(scope="module")
def author_model(author_files: CheckpointFiles) -> MultiLevelCTC:
    return load_multilevel_ctc(author_files, "cpu", "float32")


def _max_diff(logits: dict[str, torch.Tensor], arrays: dict[str, np.ndarray], prefix: str) -> float:
    return max(float(np.abs(v.numpy() - arrays[f"{prefix}/logits/{level}"]).max()) for level, v in logits.items())


def _on_their_features(model: MultiLevelCTC, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    return model(torch.from_numpy(arrays[f"{prefix}/features"]), torch.from_numpy(arrays[f"{prefix}/mask"]))


def test_the_author_checkpoint_format(author_files: CheckpointFiles) -> None:
    assert author_files.config["architectures"] == ["Wav2Vec2BertForMultilevelCTC"]
    assert not author_files.dev_weights
    assert author_files.preprocessor_config["padding_value"] == 1.0
    # The author's vocab.json builder and ours give the same table.
    assert author_files.vocab == build_vocab_table()


@torch.no_grad()
def test_logits_match_on_each_recording_alone(
    author_files: CheckpointFiles, author_model: MultiLevelCTC, arrays: dict[str, np.ndarray]
) -> None:
    extractor = FeatureExtractor(author_files.preprocessor_config)
    for clip in _clips():
        prefix = f"alone/{clip['name']}"
        features, mask = extractor([load_recording(clip["file"])])
        np.testing.assert_array_equal(mask.numpy(), arrays[f"{prefix}/mask"])
        np.testing.assert_allclose(features.numpy(), arrays[f"{prefix}/features"], atol=2e-5, rtol=0)
        # On the author's own features, and end to end on ours.
        assert _max_diff(_on_their_features(author_model, arrays, prefix), arrays, prefix) < LOGIT_TOLERANCE
        assert _max_diff(author_model(features, mask), arrays, prefix) < LOGIT_TOLERANCE


@torch.no_grad()
def test_logits_match_on_a_padded_batch(
    author_files: CheckpointFiles, author_model: MultiLevelCTC, arrays: dict[str, np.ndarray]
) -> None:
    features, mask = torch.from_numpy(arrays["batch/features"]), torch.from_numpy(arrays["batch/mask"])
    logits = author_model(features, mask)
    lengths = output_lengths(geometry(author_files), mask.sum(dim=1))
    for level, value in logits.items():
        expected = arrays[f"batch/logits/{level}"]
        for item, length in enumerate(lengths):
            np.testing.assert_allclose(
                value[item, :length].numpy(), expected[item, :length], atol=LOGIT_TOLERANCE, rtol=0
            )


@torch.no_grad()
def test_a_dev_checkpoint_runs_the_same_in_the_author_class(
    tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC, arrays: dict[str, np.ndarray]
) -> None:
    for clip in _clips():
        prefix = f"dev/{clip['name']}"
        assert _max_diff(_on_their_features(tiny_model, arrays, prefix), arrays, prefix) < LOGIT_TOLERANCE


def _as_the_author_decodes(log_probs: np.ndarray) -> np.ndarray:
    """The frames quran_muaalem's ctc_decode emits tokens for: it stops before a one-frame
    token on the last frame that follows a blank."""
    best = log_probs.argmax(axis=1)
    if len(best) >= 2 and best[-2] == BLANK_ID and best[-1] != BLANK_ID:
        return log_probs[:-1]
    return log_probs


@torch.no_grad()
def test_greedy_decode_is_the_authors(
    author_files: CheckpointFiles, author_model: MultiLevelCTC, arrays: dict[str, np.ndarray], peer: Path
) -> None:
    from quran_transcript import MoshafAttributes, quran_phonetizer

    vocab = Vocabulary.from_checkpoint(author_files)
    expected_all = json.loads((peer / "decode.json").read_text(encoding="utf-8"))
    paths: set[str] = set()
    for clip in _clips():
        prefix = f"alone/{clip['name']}"
        logits = _on_their_features(author_model, arrays, prefix)
        # The author decodes every output frame of the batch tensor.
        log_probs = {level: torch.log_softmax(value[0].float(), dim=-1).numpy() for level, value in logits.items()}
        trimmed = {level: _as_the_author_decodes(value) for level, value in log_probs.items()}
        reference_script = quran_phonetizer(clip["uthmani"], MoshafAttributes(**MOSHAF), remove_spaces=True)
        reference = DecodeReference.from_sifat(reference_script.sifat)
        result = greedy_decode(trimmed, vocab, reference)
        expected = expected_all[clip["name"]]

        assert result.phonemes == expected["phonemes"]
        assert [t.id for t in result.tokens] == expected["ids"]
        np.testing.assert_allclose([t.prob for t in result.tokens], expected["probs"], atol=1e-6, rtol=0)
        assert [g.phonemes for g in result.groups] == [s["phonemes_group"] for s in expected["sifat"]]
        for group, theirs in zip(result.groups, expected["sifat"], strict=True):
            for level in vocab.sifa_levels:
                ours, unit = group.sifat[level], theirs[level]
                their_label = None if unit is None or unit["text"] == "[PAD]" else unit["text"]
                assert (ours.label if ours is not None else None) == their_label, (clip["name"], level)
                if ours is None:
                    continue
                if result.sifa_alignment[level] == "reference":
                    assert unit["prob"] == unit["idx"]  # the author's probs-for-ids bug
                    assert 0.0 < ours.prob <= 1.0
                else:
                    assert ours.prob == pytest.approx(unit["prob"], abs=1e-6)
        paths.update(result.sifa_alignment.values())

        # The only difference on the untrimmed frames: one more token on a trimmed level.
        full = greedy_decode(log_probs, vocab, reference, skip_sifat=True)
        extra = 1 if len(trimmed["phonemes"]) < len(log_probs["phonemes"]) else 0
        assert len(full.tokens) == len(result.tokens) + extra
    assert {"position", "reference"} <= paths


@pytest.fixture(scope="module")
def author_graph(author_files: CheckpointFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.asr.export import export_onnx

    return export_onnx(author_files, tmp_path_factory.mktemp("author-onnx") / "author.onnx")


@torch.no_grad()
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_openvino_on_the_conformance_set(
    author_graph: Path,
    author_files: CheckpointFiles,
    author_model: MultiLevelCTC,
    arrays: dict[str, np.ndarray],
    tmp_path: Path,
    precision: str,
) -> None:
    """The OpenVINO backend on the author's checkpoint and features: float32 logits within the
    tolerance of the author's and the same greedy decode. bfloat16: the decode `auto` relies on
    where it picks bfloat16. This checkpoint has random weights, whose flat log-probs leave near
    ties that bfloat16 flips (a few symbols per recording, measured: not identical), so here it
    is held to >= 97 % similarity; identity needs a trained model's confident frames (the
    full-size measurement of issue 17 had the same argmax on every frame)."""
    pytest.importorskip("openvino")
    from services.asr.openvino_backend import OpenVinoMultiLevelCTC

    if precision == "bfloat16" and not native_bf16_flags():
        pytest.skip("no native bfloat16 on this CPU: the openvino backend refuses it (tests/asr/test_openvino.py)")
    backend = OpenVinoMultiLevelCTC(author_graph, precision=precision, cache_dir=tmp_path)
    vocab = Vocabulary.from_checkpoint(author_files)
    for clip in _clips():
        prefix = f"alone/{clip['name']}"
        ours = _on_their_features(backend, arrays, prefix)  # type: ignore[arg-type]
        if precision == "float32":
            assert _max_diff(ours, arrays, prefix) < LOGIT_TOLERANCE
        expected = _on_their_features(author_model, arrays, prefix)
        decoded = [
            greedy_decode({k: torch.log_softmax(v[0].float(), -1).numpy() for k, v in logits.items()}, vocab,
                          skip_sifat=True)
            for logits in (ours, expected)
        ]
        if precision == "float32":
            assert decoded[0].phonemes == decoded[1].phonemes, clip["name"]
            assert [t.id for t in decoded[0].tokens] == [t.id for t in decoded[1].tokens]
        else:
            similarity = difflib.SequenceMatcher(None, decoded[0].phonemes, decoded[1].phonemes).ratio()
            assert similarity >= 0.97, (clip["name"], similarity)
