"""Every threshold a tajweed verdict depends on, in one object that a calibration step sets.

The values are to be chosen on the CALIBRATION split (surahs 80-89), never on the
EVALUATION split (surahs 90-114): a threshold tuned on the recitations it is then scored
on reports a false-alarm rate no learner will see. `fitted_on_surahs` records the surahs a
calibration was fitted on, and loading refuses one that names an evaluation surah.

A calibration lives in a JSON file, `calibration.json` beside the checkpoint it was fitted
for (`Calibration.beside(checkpoint_dir)`), and is loaded with it: the tajweed service
reads the file named by MUAALEM_TAJWEED_CALIBRATION (config.py). Every field has a default
(the value used before any calibration: a reasoned guess, stated next to it); a file may
hold only some fields, and a field this version does not know is an error, not ignored.

The fields, by what they decide:
- length rules (madd, ghunnah): `tolerance_harakat` per rule (RuleKind name -> harakat
  around the expected length that still count as right); `ghunnah_long_slack_harakat` (more
  room above a ghunnah's length than below it); `uncertain_margin_harakat` (a band
  just beyond the tolerance where the verdict is UNCERTAIN, not an error);
  `min_error_confidence` (an error whose own probability is lower is UNCERTAIN);
- letters and harakat: `letter_min_confidence` (a letter error less sure than this is UNCERTAIN),
  `letter_min_confidence_by_letter` (the same per expected letter, where fitted);
  `letter_sure_phases` and `letter_dismiss_phases` (the share of frame-phase decodes that must
  hear the error for it to be one, or to be shown at all); `letter_uncertain_llr` and
  `letter_dismiss_llr` (how well the aligner finds the expected sound in the audio);
- how duration and decoded symbol count combine: `duration_rel_sd` and
  `symbol_sd_harakat` (their spreads, hence their weights in the blend),
  `disagreement_harakat` (apart by this much or more, and giving different verdicts each on
  its own, they are UNCERTAIN whatever the blend says), `errors_need_agreement` (an error
  needs each source on its own to say so);
- shadda: `shadda_threshold` (held consonant lengths that count as doubled) and
  `presence_contradiction` (two votes each this sure of opposite answers are UNCERTAIN);
- sifa evidence levels: P(maghnoon) at or above `ghonna_present` is nasal, at or below
  `ghonna_absent` is not; P(moqalqal) likewise with `qalqla_present` / `qalqla_absent`;
  between the two the level is weak evidence;
- the qalqalah release: its peak (energy.burst) at least `release_level_db` against the
  recitation's loud level is a release, at most `no_release_level_db` none;
- pauses and stops: `silence_drop_db` and `silence_floor_margin_db` (what silence is,
  energy.py), `min_pause_s` (a silence this long is a pause), `waqf_fall_db` (the fall
  of a clean final stop);
- the reciter's tempo (tempo.py): `prior_haraka_s`, `prior_log_sd`, `vowel_ratio`,
  `consonant_ratio`, `min_tempo_samples`, `outlier_sd`;
- `fit`: the figures a fitted file was chosen on (bench/calibrate.py); no verdict reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "calibration.json"
FORMAT = "muaalem-tajweed-calibration/1"
CALIBRATION_SURAHS = range(80, 90)
EVALUATION_SURAHS = range(90, 115)

# A madd's boundary is half-way between two lengths; a ghunnah has a single length (2), and
# its measure (a held nasal between consonant spikes) is looser.
_MADD_TOLERANCE = 0.5
_GHUNNAH_TOLERANCE = 0.75
LENGTH_RULES = (
    "MADD_TABEEI", "MADD_MUTTASIL", "MADD_MUNFASIL", "MADD_LAZIM", "MADD_ARID", "MADD_LEEN",
    "MADD_BADAL", "MADD_SILAH", "MADD_IWAD", "GHUNNAH", "IDGHAM", "IKHFA", "IQLAB",
)


# An llr no aligned sound reaches (the aligner's llr is a mean log-probability ratio): a limit
# at this value is none.
NO_LLR_LIMIT = 1000.0


def _default_tolerances() -> dict[str, float]:
    return {rule: _MADD_TOLERANCE if rule.startswith("MADD_") else _GHUNNAH_TOLERANCE for rule in LENGTH_RULES}


class CalibrationError(ValueError):
    """A calibration file or value that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Calibration:
    """Thresholds of the tajweed verdicts; choose them on surahs 80-89, never on 90-114 (see the module)."""

    # Harakat around the expected length that still count as right, per rule (RuleKind name).
    tolerance_harakat: Mapping[str, float] = field(default_factory=_default_tolerances)
    # Added to a ghunnah rule's tolerance above its length only: the learner's mistake is the
    # ghunnah dropped or cut short, a right hold measures long more often than short (the
    # nasal carries into the transition to the next sound), and a ghunnah held long is not the
    # mistake a teacher corrects first. 0: symmetric. Madds keep symmetric tolerances: a madd
    # stretched past its length is a mistake of its own.
    ghunnah_long_slack_harakat: float = 0.0
    # Beyond the tolerance by less than this: UNCERTAIN, not an error (a measure one frame off
    # must not flip a verdict).
    uncertain_margin_harakat: float = 0.25
    # An error verdict less probable than this (under the measures' spreads) is UNCERTAIN.
    min_error_confidence: float = 0.6
    # A letter or haraka error (explain.py) whose confidence (the decoded group's probability and
    # the aligner's posterior for the expected sound) is below this is UNCERTAIN: the model's own
    # slips are weaker evidence than a learner's real mistakes. 0 keeps every such error.
    letter_min_confidence: float = 0.0
    # Per letter (the core letter of the sound expected; "" for a sound added where none is),
    # its own minimum confidence, where the calibration split held enough of its findings: a
    # model hears some sounds worse than others (a glottal stop worst). The rest use
    # letter_min_confidence.
    letter_min_confidence_by_letter: Mapping[str, float] = field(default_factory=dict)
    # Frame phases (the same audio decoded on a grid moved by k/N of a frame; the gateway's
    # MUAALEM_LETTER_PHASES): a letter or haraka error heard by fewer than `letter_sure_phases`
    # of the decodes is UNCERTAIN, and by fewer than `letter_dismiss_phases` it is no finding:
    # most decodes heard the letter as written. Defaults: every phase to call it an error, half
    # of them to show it at all.
    letter_sure_phases: float = 1.0
    letter_dismiss_phases: float = 0.5
    # The aligner's evidence on a letter or haraka substituted or missing: the most contradicted
    # llr of the expected sounds (target against the best competitor over its frames; negative:
    # the competitor likelier). Above `letter_uncertain_llr` the error is UNCERTAIN (the sound
    # fits what was expected nearly as well as what was decoded); above `letter_dismiss_llr` it
    # is no finding (it fits it as well or better). NO_LLR_LIMIT: not used (the defaults).
    letter_uncertain_llr: float = NO_LLR_LIMIT
    letter_dismiss_llr: float = NO_LLR_LIMIT
    # Relative spread of an aligned duration (Husary's haraka varies ~15 % around its mean).
    duration_rel_sd: float = 0.15
    # Spread of a length counted from decoded symbols (the model's published madd count RMSE on
    # learners: 0.46 natural, 0.69 munfasil, 1.03 'arid).
    symbol_sd_harakat: float = 0.8
    # Duration and symbols this far apart, giving different verdicts on their own: UNCERTAIN
    # (e.g. 2 symbols decoded, 0.8 harakat timed, for a madd of 2).
    disagreement_harakat: float = 1.0
    # True: a length error needs the duration and the symbols, each on its own, to say so.
    errors_need_agreement: bool = False
    # Expected ghunnah length.
    ghunnah_harakat: float = 2.0
    # A doubled consonant held at least this many single-consonant lengths counts as doubled.
    shadda_threshold: float = 1.5
    # Two presence votes each at least this sure of opposite answers: UNCERTAIN.
    presence_contradiction: float = 0.8
    # Sifa evidence: P(maghnoon) for ghunnah, P(moqalqal) for qalqalah.
    ghonna_present: float = 0.5
    ghonna_absent: float = 0.2
    qalqla_present: float = 0.7
    qalqla_absent: float = 0.3
    # A qalqalah release's peak against the recitation's loud level (dB, 0: as loud as the
    # vowels; energy.burst).
    release_level_db: float = -6.0
    no_release_level_db: float = -12.0
    # Silence: this far under the loud frames, and within silence_floor_margin_db of the
    # recording's noise floor (energy.py).
    silence_drop_db: float = 25.0
    silence_floor_margin_db: float = 10.0
    # A silence between two words at least this long is a pause; shorter is a closure or a sakt.
    min_pause_s: float = 0.25
    # The last 50 ms of a clean final stop lie this far under the loud frames.
    waqf_fall_db: float = 20.0
    # Tempo prior: Husary's measured haraka at murattal speed, its spread across reciters (log).
    prior_haraka_s: float = 0.379
    prior_log_sd: float = 0.35
    # Prior short vowel (a voweled letter's nucleus) and sakin consonant, as fractions of a haraka.
    vowel_ratio: float = 0.6
    consonant_ratio: float = 0.6
    # Below this many short vowels measured, the tempo is reported as coming from the prior.
    min_tempo_samples: int = 3
    # Tempo samples farther than this many robust SDs from the median are outliers.
    outlier_sd: float = 3.0
    # Surahs the values were fitted on (empty: the defaults, fitted on nothing).
    fitted_on_surahs: tuple[int, ...] = ()
    # Free text: what produced the values (command, date, checkpoint).
    note: str = ""
    # The figures the values were chosen on (bench/calibrate.py: per threshold, the grid point
    # chosen and the recall, false alarms and uncertain findings it gave). No verdict reads them.
    fit: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tolerances = dict(self.tolerance_harakat)
        unknown = sorted(set(tolerances) - set(LENGTH_RULES))
        if unknown:
            raise CalibrationError(f"tolerance_harakat: unknown rules {unknown}; known: {', '.join(LENGTH_RULES)}")
        # A file may name only some rules: the others keep their defaults.
        object.__setattr__(self, "tolerance_harakat", {**_default_tolerances(), **tolerances})
        object.__setattr__(self, "fitted_on_surahs", tuple(int(s) for s in self.fitted_on_surahs))
        for name, value in self.tolerance_harakat.items():
            _check(f"tolerance_harakat[{name}]", value, low=0.0, low_open=True, high=3.0)
        _check("uncertain_margin_harakat", self.uncertain_margin_harakat, low=0.0, high=3.0)
        _check("ghunnah_long_slack_harakat", self.ghunnah_long_slack_harakat, low=0.0, high=3.0)
        _check("min_error_confidence", self.min_error_confidence, low=0.0, high=1.0)
        _check("letter_min_confidence", self.letter_min_confidence, low=0.0, high=1.0)
        object.__setattr__(self, "letter_min_confidence_by_letter", dict(self.letter_min_confidence_by_letter))
        for letter, value in self.letter_min_confidence_by_letter.items():
            if len(letter) > 1:
                raise CalibrationError(
                    f"letter_min_confidence_by_letter: {letter!r} is not one letter (or \"\" for an added sound)"
                )
            _check(f"letter_min_confidence_by_letter[{letter}]", value, low=0.0, high=1.0)
        _check("letter_sure_phases", self.letter_sure_phases, low=0.0, high=1.0)
        _check("letter_dismiss_phases", self.letter_dismiss_phases, low=0.0, high=1.0)
        _check("letter_uncertain_llr", self.letter_uncertain_llr, low=-NO_LLR_LIMIT, high=NO_LLR_LIMIT)
        _check("letter_dismiss_llr", self.letter_dismiss_llr, low=-NO_LLR_LIMIT, high=NO_LLR_LIMIT)
        if self.letter_uncertain_llr > self.letter_dismiss_llr:
            raise CalibrationError("letter_uncertain_llr must not exceed letter_dismiss_llr")
        if self.letter_dismiss_phases > self.letter_sure_phases:
            raise CalibrationError("letter_dismiss_phases must not exceed letter_sure_phases")
        for name in ("duration_rel_sd", "symbol_sd_harakat", "disagreement_harakat", "ghunnah_harakat",
                     "shadda_threshold", "silence_drop_db", "silence_floor_margin_db", "min_pause_s",
                     "waqf_fall_db", "prior_haraka_s", "prior_log_sd", "vowel_ratio", "consonant_ratio",
                     "outlier_sd"):
            _check(name, getattr(self, name), low=0.0, low_open=True)
        for name in ("presence_contradiction", "ghonna_present", "ghonna_absent", "qalqla_present", "qalqla_absent"):
            _check(name, getattr(self, name), low=0.0, high=1.0)
        if self.ghonna_absent > self.ghonna_present:
            raise CalibrationError("ghonna_absent must not exceed ghonna_present")
        if self.qalqla_absent > self.qalqla_present:
            raise CalibrationError("qalqla_absent must not exceed qalqla_present")
        if self.no_release_level_db > self.release_level_db:
            raise CalibrationError("no_release_level_db must not exceed release_level_db")
        if self.min_tempo_samples < 1:
            raise CalibrationError(f"min_tempo_samples must be >= 1, got {self.min_tempo_samples}")
        leaked = sorted(set(self.fitted_on_surahs) & set(EVALUATION_SURAHS))
        if leaked:
            raise CalibrationError(
                f"fitted_on_surahs names evaluation surahs {leaked}: calibrate on surahs 80-89, never on 90-114"
            )

    def __hash__(self) -> int:
        # The tolerances are a dict: hash the canonical values instead.
        return hash(self.digest())

    def letter_threshold(self, letter: str) -> float:
        """The minimum confidence of a letter error on `letter` (see letter_min_confidence_by_letter)."""
        return self.letter_min_confidence_by_letter.get(letter, self.letter_min_confidence)

    def tolerance(self, rule: str) -> float:
        """Tolerance of a length rule by its RuleKind name (e.g. "MADD_ARID")."""
        return self.tolerance_harakat[rule]

    @property
    def is_default(self) -> bool:
        return self == Calibration()

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["tolerance_harakat"] = dict(sorted(self.tolerance_harakat.items()))
        values["letter_min_confidence_by_letter"] = dict(sorted(self.letter_min_confidence_by_letter.items()))
        values["fitted_on_surahs"] = list(self.fitted_on_surahs)
        values["fit"] = dict(self.fit)
        return {"format": FORMAT, **values}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1, sort_keys=False) + "\n"

    def digest(self) -> str:
        """First 16 hex digits of the sha256 of the values: which thresholds judged a recitation."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        values = dict(data)
        declared = values.pop("format", FORMAT)
        if declared != FORMAT:
            raise CalibrationError(f"format {declared!r} is not {FORMAT!r}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise CalibrationError(f"unknown calibration fields {unknown}")
        for name, value in values.items():
            values[name] = _coerce(name, known[name].type, value)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CalibrationError("a calibration is a JSON object")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Reads a calibration file; a checkpoint directory means its calibration.json."""
        target = Path(path)
        if target.is_dir():
            target = target / FILE_NAME
        try:
            text = target.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalibrationError(f"cannot read the calibration {target}: {exc}") from exc
        try:
            return cls.from_json(text)
        except CalibrationError as exc:
            raise CalibrationError(f"{target}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Writes the calibration; a directory (a checkpoint's) gets calibration.json inside it."""
        target = Path(path)
        if target.is_dir():
            target = target / FILE_NAME
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @staticmethod
    def beside(checkpoint_dir: str | Path) -> Path:
        """Where a checkpoint's calibration lives."""
        return Path(checkpoint_dir) / FILE_NAME


def _check(name: str, value: float, *, low: float, high: float = math.inf, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"{name} must be a finite number, got {value!r}")
    if value < low or (low_open and value == low) or value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        if high != math.inf:
            bound += f" and <= {high}"
        raise CalibrationError(f"{name} must be {bound}, got {value}")


def _coerce(name: str, annotation: object, value: Any) -> Any:
    """JSON values to the field's type, with an error naming the field."""
    kind = str(annotation)
    if kind == "bool":
        if not isinstance(value, bool):
            raise CalibrationError(f"{name} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise CalibrationError(f"{name} must be an integer, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalibrationError(f"{name} must be a number, got {value!r}")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise CalibrationError(f"{name} must be text, got {value!r}")
        return value
    if name == "tolerance_harakat":
        if not isinstance(value, dict):
            raise CalibrationError(f"{name} must be an object of rule -> harakat, got {value!r}")
        return {str(k): _coerce(f"{name}[{k}]", "float", v) for k, v in value.items()}
    if name == "letter_min_confidence_by_letter":
        if not isinstance(value, dict):
            raise CalibrationError(f"{name} must be an object of letter -> confidence, got {value!r}")
        return {str(k): _coerce(f"{name}[{k}]", "float", v) for k, v in value.items()}
    if name == "fit":
        if not isinstance(value, dict):
            raise CalibrationError(f"{name} must be an object (the figures of the fit), got {value!r}")
        return value
    if name == "fitted_on_surahs":
        if not isinstance(value, list):
            raise CalibrationError(f"{name} must be a list of surah numbers, got {value!r}")
        return tuple(_coerce(f"{name}[]", "int", v) for v in value)
    raise CalibrationError(f"{name}: unsupported field type {kind}")  # pragma: no cover
