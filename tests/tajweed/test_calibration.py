"""The calibration object: every threshold in one file beside the checkpoint, loaded with it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.common.config import ConfigError
from services.tajweed.calibration import FILE_NAME, FORMAT, LENGTH_RULES, Calibration, CalibrationError
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.model import RuleKind, Verdict
from services.tajweed.servicer import TajweedServicer
from tests.tajweed import synth

FITTED = Calibration(
    tolerance_harakat={"MADD_ARID": 1.0, "IKHFA": 0.6},
    uncertain_margin_harakat=0.3,
    min_error_confidence=0.7,
    disagreement_harakat=1.2,
    errors_need_agreement=True,
    ghonna_absent=0.25,
    qalqla_present=0.75,
    release_level_db=-4.0,
    min_pause_s=0.3,
    fitted_on_surahs=(80, 81, 82),
    note="fitted by the calibration step on surahs 80-82",
)


def test_saved_beside_a_checkpoint_and_loaded_back(tmp_path: Path) -> None:
    path = FITTED.save(tmp_path)
    assert path == Calibration.beside(tmp_path) == tmp_path / FILE_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT
    assert set(data["tolerance_harakat"]) == set(LENGTH_RULES)
    loaded = Calibration.load(tmp_path)
    assert loaded == FITTED
    assert loaded.digest() == FITTED.digest() != Calibration().digest()
    assert Calibration.load(path) == FITTED
    assert not loaded.is_default and Calibration().is_default


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps({"tolerance_harakat": {"MADD_ARID": 1.0}, "min_pause_s": 0.4}), encoding="utf-8")
    loaded = Calibration.load(path)
    assert loaded.tolerance("MADD_ARID") == 1.0
    assert loaded.tolerance("MADD_TABEEI") == Calibration().tolerance("MADD_TABEEI") == 0.5
    assert loaded.tolerance("GHUNNAH") == 0.75
    assert loaded.min_pause_s == 0.4
    assert loaded.disagreement_harakat == Calibration().disagreement_harakat


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"madd_tolerance": 0.5}, "unknown calibration fields"),
        ({"tolerance_harakat": {"MADD_FOO": 0.5}}, "MADD_FOO"),
        ({"min_pause_s": "long"}, "min_pause_s must be a number"),
        ({"min_pause_s": -1}, "min_pause_s must be > 0"),
        ({"errors_need_agreement": 1}, "errors_need_agreement must be true or false"),
        ({"qalqla_present": 0.2, "qalqla_absent": 0.4}, "qalqla_absent must not exceed"),
        ({"letter_sure_phases": 0.5, "letter_dismiss_phases": 0.75}, "letter_dismiss_phases must not exceed"),
        ({"letter_sure_phases": 1.5}, "letter_sure_phases"),
        ({"letter_uncertain_llr": 1.0, "letter_dismiss_llr": 0.0}, "letter_uncertain_llr must not exceed"),
        ({"letter_min_confidence_by_letter": {"ab": 0.5}}, "'ab' is not one letter"),
        ({"letter_min_confidence_by_letter": {"ء": 1.5}}, "letter_min_confidence_by_letter\\[ء\\] must be"),
        ({"letter_min_confidence_by_letter": [0.5]}, "must be an object of letter -> confidence"),
        ({"format": "something-else/9"}, "format"),
        ({"fitted_on_surahs": [85, 95]}, "never on 90-114"),
    ],
)
def test_a_bad_calibration_names_its_field(tmp_path: Path, data: dict[str, object], message: str) -> None:
    path = tmp_path / FILE_NAME
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CalibrationError, match=message):
        Calibration.load(path)


def test_the_service_loads_it_from_the_environment_and_says_which(tmp_path: Path) -> None:
    FITTED.save(tmp_path)
    config = TajweedConfig.from_env({"MUAALEM_TAJWEED_CALIBRATION": str(tmp_path)})
    assert config.calibration == FITTED
    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    reply = asyncio.run(TajweedServicer(TajweedValidator(config)).Validate(synth.request(ref, timing)))
    assert reply.calibration.source == str(tmp_path)
    assert reply.calibration.digest == FITTED.digest()
    assert not reply.calibration.defaults
    with pytest.raises(ConfigError, match="MUAALEM_TAJWEED_CALIBRATION"):
        TajweedConfig.from_env({"MUAALEM_TAJWEED_CALIBRATION": str(tmp_path / "missing.json")})


def test_the_calibration_decides_the_verdict() -> None:
    """A 6-count 'arid read where the moshaf chose 4: an error with the default tolerance, right
    with one calibrated to 2 harakat for 'arid."""
    ref = synth.reference(2, 19, madd_aared_len=4)
    arid = synth.group_index(ref, "ۦۦۦۦ", 1)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[arid] = 6 * 0.3
    req = synth.request(ref, synth.alignment(ref, durations), validators=["madd"])
    wide = TajweedConfig(calibration=Calibration(tolerance_harakat={"MADD_ARID": 2.0}))
    [strict] = [f for f in synth.validate(req).findings if f.rule == RuleKind.MADD_ARID]
    [lenient] = [f for f in synth.validate(req, wide).findings if f.rule == RuleKind.MADD_ARID]
    assert (strict.verdict, lenient.verdict) == (Verdict.TOO_LONG, Verdict.CORRECT)
    # Other rules keep their own tolerance.
    others = [f for f in synth.validate(req, wide).findings if f.rule != RuleKind.MADD_ARID]
    assert others and all(f.verdict == Verdict.CORRECT for f in others)
