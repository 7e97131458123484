"""Plain data the tajweed core reads and writes; the servicer converts protobuf to and from it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

# ---------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------


def split_group(phonemes: str) -> tuple[str, int, str]:
    """A phoneme group's core (its first letter), how many copies of it lead, and the rest (its mark)."""
    core = phonemes[0]
    count = len(phonemes) - len(phonemes.lstrip(core))
    return core, count, phonemes[count:]


@dataclass(frozen=True)
class Group:
    """A reference phoneme group: one or more copies of a core letter, then at most one mark."""

    index: int
    phonemes: str
    start: int
    end: int
    word_index: int
    # The reference's own sifat labels, by level name (e.g. "ghonna": "maghnoon").
    sifat: dict[str, str] = field(default_factory=dict)

    @property
    def core(self) -> str:
        return self.phonemes[0]

    @property
    def count(self) -> int:
        """Copies of the core letter (a madd's length, a shadda's doubling, a ghunnah's run)."""
        return split_group(self.phonemes)[1]

    @property
    def mark(self) -> str:
        return split_group(self.phonemes)[2]


@dataclass(frozen=True)
class Word:
    index: int
    uthmani: str
    surah: int
    ayah: int
    word_in_ayah: int
    text_start: int
    text_end: int
    phoneme_start: int
    phoneme_end: int


@dataclass(frozen=True)
class RuleRef:
    """A tajweed rule from quran-transcript's mappings, located in the reference."""

    name: str  # the rule's class name, e.g. "MonfaselMaddRule"
    name_ar: str
    name_en: str
    golden_len: int
    tag: str
    phoneme_start: int
    phoneme_end: int
    text_start: int
    text_end: int
    word_index: int


@dataclass(frozen=True)
class Reference:
    uthmani: str
    phonemes: str
    groups: tuple[Group, ...]
    words: tuple[Word, ...]
    rules: tuple[RuleRef, ...]
    # MoshafAttributes as field name -> value (only the fields the reference carries).
    moshaf: dict[str, Any]
    surah: int
    ends_with_waqf: bool
    phonetizer_version: str

    def group_at(self, phoneme_index: int) -> Group:
        """The group holding a phoneme (binary search over the tiling groups)."""
        lo, hi = 0, len(self.groups) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.groups[mid].start <= phoneme_index:
                lo = mid
            else:
                hi = mid - 1
        return self.groups[lo]


@dataclass(frozen=True)
class AlignedToken:
    phoneme: str
    start_s: float
    end_s: float
    llr: float = 0.0
    gop: float = 0.0
    flagged: bool = False


@dataclass(frozen=True)
class Alignment:
    """One token per reference phoneme, in reference order."""

    tokens: tuple[AlignedToken, ...]
    frame_s: float


@dataclass(frozen=True)
class DecodedToken:
    phoneme: str
    prob: float
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class SifaProb:
    label: str
    prob: float

    def probability_of(self, label: str) -> float:
        """P(label) for a two-label level, read from the top label and its probability."""
        return self.prob if self.label == label else 1.0 - self.prob


@dataclass(frozen=True)
class Decode:
    phonemes: str
    tokens: tuple[DecodedToken, ...]
    # One entry per decoded phoneme group: level name -> its top label and probability.
    sifat: tuple[dict[str, SifaProb], ...]
    # The same audio decoded at other frame phases (asr TranscribeOptions.frame_phases).
    phase_phonemes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Energy:
    db: npt.NDArray[np.float32]
    hop_s: float


@dataclass(frozen=True)
class Options:
    validators: frozenset[str]
    # The request's madd tolerance; None: the calibration's, per rule.
    madd_tolerance_harakat: float | None
    include_correct: bool


@dataclass(frozen=True)
class ValidateInput:
    reference: Reference
    alignment: Alignment | None
    decode: Decode | None
    energy: Energy | None
    is_complete: bool | None
    audio_duration_s: float
    options: Options


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


class RuleKind(enum.Enum):
    """Mirrors the proto enum `Rule` (RULE_<name>)."""

    MADD_TABEEI = "MADD_TABEEI"
    MADD_MUTTASIL = "MADD_MUTTASIL"
    MADD_MUNFASIL = "MADD_MUNFASIL"
    MADD_LAZIM = "MADD_LAZIM"
    MADD_ARID = "MADD_ARID"
    MADD_LEEN = "MADD_LEEN"
    MADD_BADAL = "MADD_BADAL"
    MADD_SILAH = "MADD_SILAH"
    MADD_IWAD = "MADD_IWAD"
    SHADDA = "SHADDA"
    GHUNNAH = "GHUNNAH"
    QALQALAH = "QALQALAH"
    WAQF = "WAQF"
    PRONUNCIATION = "PRONUNCIATION"
    TASHKEEL = "TASHKEEL"
    IKHFA = "IKHFA"
    IDGHAM = "IDGHAM"
    IQLAB = "IQLAB"


class Verdict(enum.Enum):
    """Mirrors the proto enum `Verdict` (VERDICT_<name>)."""

    CORRECT = "CORRECT"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    MISSING = "MISSING"
    WRONG = "WRONG"
    EXTRA = "EXTRA"
    UNCERTAIN = "UNCERTAIN"


@dataclass(frozen=True)
class Measured:
    duration_harakat: float | None = None
    symbol_count: float | None = None
    duration_s: float | None = None
    sifa_prob: float | None = None
    energy_ratio: float | None = None
    text: str = ""
    # The spread the judgement gave duration_harakat (evidence.Length.sd), for replaying it.
    duration_sd: float | None = None
    # A letter error: of `phases` decodes (the decode and its frame phases), how many heard it.
    phases_heard: int | None = None
    phases: int | None = None


@dataclass(frozen=True)
class Finding:
    rule: RuleKind
    rule_name: str
    word_index: int
    text_span: tuple[int, int]
    time_span: tuple[float, float] | None
    expected_harakat: tuple[int, ...]
    expected_text: str
    measured: Measured
    verdict: Verdict
    confidence: float
    message_ar: str
    message_en: str
    phoneme_start: int
    phoneme_end: int
    expected_phonemes: str
    heard_phonemes: str
    source: str


@dataclass(frozen=True)
class Tempo:
    haraka_s: float
    samples: int
    from_prior: bool
    consonant_s: float
    # Standard deviation of log(haraka_s): how well the tempo is known.
    haraka_log_sd: float
    # The short vowel of a voweled letter (its nucleus), in seconds.
    vowel_s: float
    # The consonant of a voweled letter: its own frames (a spike's length on a peaky model).
    onset_s: float


@dataclass(frozen=True)
class CalibrationInfo:
    """Which thresholds judged a request: the calibration file (empty: the defaults) and its digest."""

    source: str
    digest: str
    defaults: bool


@dataclass(frozen=True)
class ValidateResult:
    findings: tuple[Finding, ...]
    tempo: Tempo
    timings_ms: dict[str, float]
    calibration: CalibrationInfo


# The validators a request may name in options.validators, in the order they run.
VALIDATORS = ("madd", "shadda", "ghunnah", "qalqalah", "waqf", "explain_error")
