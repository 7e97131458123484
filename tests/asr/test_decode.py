"""Greedy CTC decode: runs and probabilities, phoneme groups, and the three ways sifat meet groups."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from services.asr.convert import log_probs_tensor
from services.asr.decode import (
    LOG_PROB_FLOOR,
    DecodeReference,
    DecodeResult,
    greedy_decode,
    greedy_runs,
    phoneme_groups,
)
from services.asr.vocab import Vocabulary
from services.common import tensors
from services.common.errors import InvalidArgument
from tests.conftest import FIXTURES_DIR

VOCAB = Vocabulary.from_quran_transcript()
BLANK = (0, 0.99)


def frames(pairs: Sequence[tuple[int, float]], size: int) -> np.ndarray:
    """(T, V) log-probs whose per-frame argmax and top-1 probability are the given pairs."""
    out = np.empty((len(pairs), size), dtype=np.float32)
    for row, (token, prob) in zip(out, pairs, strict=True):
        row[:] = np.log(max(1.0 - prob, 1e-12) / (size - 1))
        row[token] = np.log(prob)
    return out


def phoneme_id(char: str) -> int:
    return VOCAB.tokens["phonemes"].index(char)


def label_id(level: str, label: str) -> int:
    return VOCAB.labels[level].index(label)


def test_runs_collapse_repeats_drop_blanks_and_average_probabilities() -> None:
    lp = frames([BLANK, (5, 0.9), (5, 0.7), BLANK, (5, 0.6), (7, 0.8), (7, 0.4), BLANK], 10)
    runs = greedy_runs(lp)
    assert runs.ids.tolist() == [5, 5, 7]
    np.testing.assert_allclose(runs.probs, [0.8, 0.6, 0.6], rtol=1e-6)
    assert runs.starts.tolist() == [1, 4, 5]
    assert runs.ends.tolist() == [3, 5, 7]


def test_runs_edge_cases_at_the_last_frames() -> None:
    assert greedy_runs(np.zeros((0, 5), dtype=np.float32)).ids.size == 0
    assert greedy_runs(frames([BLANK, BLANK], 5)).ids.size == 0
    single = greedy_runs(frames([(3, 0.7)], 5))
    assert single.ids.tolist() == [3] and single.probs[0] == pytest.approx(0.7, rel=1e-6)
    # A last run that continues to the end, and a last token right after another token.
    np.testing.assert_allclose(greedy_runs(frames([BLANK, (2, 0.5), (2, 0.9)], 5)).probs, [0.7], rtol=1e-6)
    tail = greedy_runs(frames([(2, 0.5), (3, 0.9)], 5))
    assert tail.ids.tolist() == [2, 3]
    np.testing.assert_allclose(tail.probs, [0.5, 0.9], rtol=1e-6)
    # quran_muaalem's ctc_decode drops a one-frame token on the last frame after a blank;
    # CTC keeps it, and so does this decode (the deliberate difference).
    kept = greedy_runs(frames([(2, 0.8), BLANK, (4, 0.6)], 5))
    assert kept.ids.tolist() == [2, 4]
    assert kept.starts.tolist() == [0, 2] and kept.ends.tolist() == [1, 3]


def _fixture_log_probs() -> tuple[dict, dict[str, np.ndarray]]:
    """The real model's decode of test.wav, turned back into frames (runs of 2-3 frames)."""
    predicted = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text())["predicted"]

    def level_frames(pairs: list[tuple[int, float]], size: int, run: int) -> np.ndarray:
        sequence = [BLANK]
        for pair in pairs:
            sequence += [pair] * run + [BLANK]
        return frames(sequence, size)

    log_probs = {"phonemes": level_frames(list(zip(predicted["ids"], predicted["probs"], strict=True)), 43, 2)}
    for level in VOCAB.sifa_levels:
        pairs = [(g[level]["id"], g[level]["prob"]) for g in predicted["sifat"]]
        log_probs[level] = level_frames(pairs, VOCAB.size(level), 3)
    return predicted, log_probs


def test_real_model_output_decodes_to_itself() -> None:
    predicted, log_probs = _fixture_log_probs()
    result = greedy_decode(log_probs, VOCAB)
    assert result.phonemes == predicted["phonemes"]
    assert [t.id for t in result.tokens] == predicted["ids"]
    np.testing.assert_allclose([t.prob for t in result.tokens], predicted["probs"], atol=1e-6)
    assert [t.start_frame for t in result.tokens][:3] == [1, 4, 7]
    assert [g.phonemes for g in result.groups] == [s["phonemes_group"] for s in predicted["sifat"]]
    assert set(result.sifa_alignment.values()) == {"position"}
    for group, expected in zip(result.groups, predicted["sifat"], strict=True):
        assert "".join(t.phoneme for t in result.tokens[group.token_start : group.token_end]) == group.phonemes
        for level in VOCAB.sifa_levels:
            value = group.sifat[level]
            assert value is not None
            assert value.label == expected[level]["text"]
            assert value.prob == pytest.approx(expected[level]["prob"], abs=1e-6)


def test_skip_sifat_still_groups_phonemes() -> None:
    _, log_probs = _fixture_log_probs()
    result = greedy_decode(log_probs, VOCAB, skip_sifat=True)
    assert len(result.groups) == 33 and all(not g.sifat for g in result.groups)


def _three_groups(level: str, sifa_pairs: list[tuple[int, float]], level_frames: list[int]) -> dict[str, np.ndarray]:
    """Phonemes بَتَثَ (three groups at frames 0-1, 2-3, 4-5) and one sifa level."""
    chars = [phoneme_id(c) for c in "بَتَثَ"]
    phonemes = frames([(c, 0.9) for c in chars], 43)
    sequence = [BLANK] * 6
    for pair, frame in zip(sifa_pairs, level_frames, strict=True):
        sequence[frame] = pair
    return {"phonemes": phonemes, level: frames(sequence, VOCAB.size(level))}


def test_count_mismatch_with_a_reference_aligns_as_quran_muaalem() -> None:
    level = "hams_or_jahr"
    jahr, hams = label_id(level, "jahr"), label_id(level, "hams")
    log_probs = _three_groups(level, [(jahr, 0.9), (hams, 0.8)], [0, 4])
    reference = DecodeReference.from_sifat(
        [
            {"phonemes": group, level: label}
            for group, label in zip(["بَ", "تَ", "ثَ", "جَ"], ["jahr", "hams", "hams", "jahr"], strict=True)
        ]
    )
    result = greedy_decode(log_probs, VOCAB, reference)
    assert [g.phonemes for g in result.groups] == ["بَ", "تَ", "ثَ"]
    assert result.sifa_alignment[level] == "reference"
    values = [g.sifat[level] for g in result.groups]
    # The edit-distance path of quran_muaalem: jahr -> reference 0, hams -> reference 2 (so
    # group 2), reference 1 gets nothing: None where it reports [PAD]; real probabilities
    # where it reports the token ids.
    assert values[1] is None
    assert values[0] is not None and (values[0].label, values[0].prob) == ("jahr", pytest.approx(0.9))
    assert values[2] is not None and (values[2].label, values[2].prob) == ("hams", pytest.approx(0.8))


def _labels(result: DecodeResult, level: str) -> list[str | None]:
    return [None if (v := g.sifat[level]) is None else v.label for g in result.groups]


def test_count_mismatch_without_a_reference_uses_frame_overlap() -> None:
    level = "qalqla"
    moqalqal, other = label_id(level, "moqalqal"), label_id(level, "not_moqalqal")
    # Groups span frames 0-1, 2-3, 4-5. Two sifa tokens: one inside group 0, one over frames
    # 3-4 (one frame in each of groups 1 and 2: the tie goes to both, each its best).
    log_probs = _three_groups(level, [(other, 0.7), (moqalqal, 0.6), (moqalqal, 0.6)], [1, 3, 4])
    result = greedy_decode(log_probs, VOCAB)
    assert result.sifa_alignment[level] == "time"
    assert _labels(result, level) == ["not_moqalqal", "moqalqal", "moqalqal"]
    # A group no sifa token overlaps gets None.
    log_probs = _three_groups(level, [(other, 0.7)], [0])
    assert _labels(greedy_decode(log_probs, VOCAB), level) == ["not_moqalqal", None, None]


def test_more_groups_than_the_reference_pairs_by_position() -> None:
    level = "ghonna"
    token = label_id(level, "not_maghnoon")
    log_probs = _three_groups(level, [(token, 0.9), (token, 0.8)], [0, 3])
    reference = DecodeReference.from_sifat([{"phonemes": "بَ", level: "not_maghnoon"}])
    result = greedy_decode(log_probs, VOCAB, reference)
    assert result.sifa_alignment[level] == "position"
    assert [g.sifat[level] is None for g in result.groups] == [False, False, True]


def test_reference_from_the_phonetizer_and_bad_labels() -> None:
    from quran_transcript import MoshafAttributes, quran_phonetizer

    out = quran_phonetizer("بِسْمِ ٱللَّهِ", MoshafAttributes(rewaya="hafs", madd_monfasel_len=4,
                           madd_mottasel_len=4, madd_mottasel_waqf=4, madd_aared_len=4), remove_spaces=True)
    reference = DecodeReference.from_sifat(out.sifat)
    assert list(reference.groups) == [g for g, _, _ in phoneme_groups(out.phonemes)]
    assert set(reference.labels[0]) == set(VOCAB.sifa_levels)
    level = "hams_or_jahr"
    log_probs = _three_groups(level, [(1, 0.9)], [0])
    bad = DecodeReference(groups=("بَ", "تَ", "ثَ", "جَ"), labels=({level: "loud"},) * 4)
    with pytest.raises(InvalidArgument, match="loud"):
        greedy_decode(log_probs, VOCAB, bad)
    with pytest.raises(InvalidArgument, match="no phonemes group"):
        DecodeReference.from_sifat([{level: "jahr"}])


def test_phoneme_groups_follow_chunck_phonemes() -> None:
    from quran_transcript import chunck_phonemes

    text = "ءِننننَللَااهَبِكُللِشَيءِنعَلِۦۦمُ۾۾۾بَرَااااءَتُ"
    spans = phoneme_groups(text)
    assert [g for g, _, _ in spans] == chunck_phonemes(text)
    assert all(text[s:e] == g for g, s, e in spans)


def test_log_probs_are_floored_for_float16() -> None:
    logits = np.array([[0.0, 1.0, -1e6], [3.0, 3.0, 3.0]], dtype=np.float32)
    out = torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, rtol=1e-6)
    # The wire tensor (convert.log_probs_tensor) floors at LOG_PROB_FLOOR and is float16.
    decoded = tensors.from_proto(log_probs_tensor(out))
    assert decoded.min() == LOG_PROB_FLOOR
    assert np.isfinite(decoded).all()
    np.testing.assert_allclose(decoded, np.maximum(out, LOG_PROB_FLOOR), rtol=1e-3)


def _plain_edit_table(rows: Sequence[object], cols: Sequence[object]) -> np.ndarray:
    """The alignment recurrence written cell by cell: the oracle for the vectorised one."""
    n, m = len(rows), len(cols)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    choice = np.zeros((n + 1, m + 1), dtype=np.int8)
    for i in range(1, n + 1):
        cost[i][0] = i
        for j in range(1, m + 1):
            skip_col, skip_row = cost[i][j - 1], cost[i - 1][j] + 1
            diagonal = cost[i - 1][j - 1] + (rows[i - 1] != cols[j - 1])
            if diagonal <= skip_col and diagonal <= skip_row:
                cost[i][j], choice[i, j] = diagonal, 3
            elif skip_col <= skip_row:
                cost[i][j], choice[i, j] = skip_col, 1
            else:
                cost[i][j], choice[i, j] = skip_row, 2
    return choice


def test_vectorised_alignment_table_equals_the_plain_recurrence() -> None:
    from services.asr.decode import _edit_table

    rng = np.random.default_rng(0)
    for _ in range(200):
        rows = rng.integers(1, 4, rng.integers(0, 12)).tolist()
        cols = rng.integers(1, 4, rng.integers(0, 12)).tolist()
        np.testing.assert_array_equal(_edit_table(rows, cols), _plain_edit_table(rows, cols))
    letters = list("ءبتثجحخ")
    rows = [letters[i] for i in rng.integers(0, 7, 40)]
    cols = [letters[i] for i in rng.integers(0, 7, 55)]
    np.testing.assert_array_equal(_edit_table(rows, cols), _plain_edit_table(rows, cols))
