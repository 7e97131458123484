"""The phoneme <-> id tables against the model vocabulary the reference builder defines."""

from __future__ import annotations

import pytest

from services.gateway.reference.builder import phoneme_vocabulary
from services.locate import script
from services.locate.index import PassageIndex


def test_ids_are_the_model_vocabulary_and_round_trip(small_index: PassageIndex) -> None:
    vocabulary = phoneme_vocabulary()
    every = "".join(vocabulary)
    assert script.to_ids(every).tolist() == list(vocabulary.values())
    assert script.from_ids(script.to_ids(small_index.phonemes)) == small_index.phonemes
    # Spaces, Latin letters and Uthmani-only marks are not phonemes.
    assert script.from_ids(script.to_ids("قُل هُوَ x ٱ")) == "قُلهُوَ"


def test_ids_outside_the_vocabulary_are_refused() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        script.from_ids([1, 0])
    with pytest.raises(ValueError, match="vocabulary"):
        script.from_ids([len(phoneme_vocabulary()) + 1])


def test_run_starts_mark_what_a_collapse_keeps() -> None:
    ids = script.to_ids("ءَاااامَنُۥۥ")
    kept = script.from_ids(ids[script.run_starts(ids)])
    assert kept == "ءَامَنُۥ"
