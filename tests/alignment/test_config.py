"""Settings, the shipped vocabulary and threshold table, and replacing the table by file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from quran_transcript import alphabet

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner, ReferenceInput
from services.alignment.thresholds import load_table
from services.alignment.vocabulary import default_vocabulary
from services.common.config import ConfigError

from . import synth


def test_vocabulary_is_the_blank_then_quran_transcript_phonetics_in_order() -> None:
    expected = ["[PAD]", *dataclasses.asdict(alphabet.phonetics).values()]
    assert list(default_vocabulary()) == expected
    assert len(expected) == 43


def test_defaults_and_environment() -> None:
    assert AlignmentConfig.from_env({}) == AlignmentConfig(
        thresholds_path="", default_threshold=0.0, band_frames=0, max_table_bytes=64 * 2**20
    )
    config = AlignmentConfig.from_env(
        {
            "MUAALEM_ALIGNMENT_THRESHOLDS": "/x.json",
            "MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD": "-0.5",
            "MUAALEM_ALIGNMENT_BAND_FRAMES": "300",
            "MUAALEM_ALIGNMENT_MAX_TABLE_MB": "8",
        }
    )
    assert config == AlignmentConfig("/x.json", -0.5, 300, 8 * 2**20)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD", "nan"),
        ("MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD", "low"),
        ("MUAALEM_ALIGNMENT_BAND_FRAMES", "-1"),
        ("MUAALEM_ALIGNMENT_MAX_TABLE_MB", "0"),
        ("MUAALEM_ALIGNMENT_MAX_TABLE_MB", "inf"),
    ],
)
def test_bad_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        AlignmentConfig.from_env({name: value})


def test_shipped_table_documents_itself_and_names_only_phonemes() -> None:
    table = load_table("", default_vocabulary())
    assert table["ں"] == -1.0 and table["۾"] == -1.0
    assert set(table) <= set(default_vocabulary()[1:])
    shipped = Path(__file__).parents[2] / "services" / "alignment" / "thresholds.json"
    assert "MUAALEM_ALIGNMENT_THRESHOLDS" in json.loads(shipped.read_text(encoding="utf-8"))["description"]


def test_a_threshold_file_replaces_the_table_without_code(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"thresholds": {"ب": 50.0}}, ensure_ascii=False), encoding="utf-8")
    aligner = Aligner.from_config(
        AlignmentConfig.from_env(
            {"MUAALEM_ALIGNMENT_THRESHOLDS": str(path), "MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD": "-3"}
        )
    )
    rng = np.random.default_rng(0)
    ids = np.array([2, 32, 28, 29], dtype=np.int64)
    truth = synth.build(rng, ids)
    result = aligner.align(truth.log_probs, 0.04, ReferenceInput(truth.phonemes, ids))
    assert result.tokens.threshold.tolist() == [50.0, -3.0, -3.0, -3.0]
    assert result.tokens.flagged.tolist() == [True, False, False, False]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not JSON"),
        ('{"x": 1}', '"thresholds"'),
        ('{"thresholds": {"Z": 1}}', "'Z' is not a phoneme"),
        ('{"thresholds": {"ب": "high"}}', "must be a finite number"),
    ],
)
def test_a_bad_threshold_file_fails_at_start_naming_the_file(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected) as caught:
        Aligner.from_config(AlignmentConfig.from_env({"MUAALEM_ALIGNMENT_THRESHOLDS": str(path)}))
    assert str(path) in str(caught.value)


def test_a_missing_threshold_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"cannot read threshold file /nonexistent/t\.json"):
        Aligner.from_config(
            AlignmentConfig.from_env({"MUAALEM_ALIGNMENT_THRESHOLDS": "/nonexistent/t.json"})
        )
