"""End to end with a model that hears: the committed demo checkpoint (trained on the synthetic
reciter, never on surahs 90-114) behind the four services as separate processes. Recitations of
the evaluation split, clean or with one injected mistake, must come back with the mistake
flagged on the right word with the right kind, and nothing flagged when clean."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.demo_model_eval import assess_with, flagged, start_mesh
from services.asr.checkpoint import DEMO_CHECKPOINT
from services.common.pb import gateway_pb2
from services.demo.synth.mistakes import Mistake
from services.demo.synth.reciter import Spec, recite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
    pytest.mark.skipif(not (DEMO_CHECKPOINT / "model.safetensors").is_file(), reason="no demo checkpoint"),
]

Assess = Callable[..., gateway_pb2.Assessment]


@pytest.fixture(scope="module")
def assess(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assess]:
    mesh = start_mesh(str(DEMO_CHECKPOINT), Path(tmp_path_factory.mktemp("demo-mesh")))
    try:
        yield assess_with(mesh)
    finally:
        mesh.stop()


def test_a_clean_recitation_gets_no_errors_and_says_demo_weights(assess: Assess) -> None:
    # One ayah the demo model hears cleanly; over the evaluation split it still raises false
    # alarms on some clean words (docs/demo-model.md gives the rate), so this is not a rate.
    for surah, ayah in ((108, 1),):
        assessment = assess(recite(Spec(surah, ayah, tempo=0.3)))
        assert assessment.model_version.demo_weights and not assessment.model_version.dev_weights
        assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MATCH
        assert [(e.word_index, e.kind, e.message_en) for e in assessment.errors] == []
        assert all(w.verdict == gateway_pb2.WORD_VERDICT_CORRECT for w in assessment.words)


# (kind, surah, ayah, word): one recitation each, at 0.3 s per haraka, the default voice.
CASES = [
    ("letter", 112, 1, 0),
    ("drop-word", 103, 2, 2),
    ("extra-word", 103, 2, 1),
    ("haraka", 108, 1, 2),
    ("short-madd", 112, 1, 2),
    ("long-madd", 112, 1, 2),
    ("no-ghunnah", 108, 1, 0),
    ("no-qalqalah", 113, 1, 3),
]
# Kinds the demo model and its calibration are known to miss here, as strict xfails naming why
# (docs/demo-model.md keeps the figures): none at present.
KNOWN_MISSES: dict[str, str] = {}
PARAMS = [
    pytest.param(*case, id=case[0], marks=[pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[case[0]])])
    if case[0] in KNOWN_MISSES
    else pytest.param(*case, id=case[0])
    for case in CASES
]


@pytest.mark.parametrize(("kind", "surah", "ayah", "word"), PARAMS)
def test_an_injected_mistake_is_flagged_on_its_word_with_its_kind(
    assess: Assess, kind: str, surah: int, ayah: int, word: int
) -> None:
    recitation = recite(Spec(surah, ayah, tempo=0.3, mistakes=(Mistake(kind, word),)))
    assessment = assess(recitation)
    lines = [(e.word_index, e.kind, gateway_pb2.ErrorItem.DESCRIPTOR.fields_by_name["rule"].enum_type
              .values_by_number[e.rule].name, e.message_en) for e in assessment.errors]
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MATCH, lines
    assert flagged(assessment, kind, word), lines


def test_a_clean_ayah_assessed_against_another_is_a_mismatch_naming_what_was_recited(assess: Assess) -> None:
    recitation = recite(Spec(112, 1, tempo=0.3))
    assessment = assess(recitation, surah=113, ayah=1)
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    best = assessment.content.likely_recited[0]
    assert (best.surah, best.ayah) == (112, 1), assessment.content
