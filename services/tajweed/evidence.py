"""Turning measurements into verdicts with a confidence, and UNCERTAIN where they do not allow one.

Lengths (madd, ghunnah): each source of evidence is a value in harakat with a standard
deviation: the aligned duration (relative spread `duration_rel_sd`, plus the tempo's own
uncertainty) and the decoded symbol count (`symbol_sd_harakat`). The verdict is UNCERTAIN,
never an error, when
- the two sources, each judged on its own, give different verdicts and are
  `disagreement_harakat` or more apart (the model decoded 2 madd symbols, the timing says
  0.8 harakat: one of them is wrong, and which is not known; a timing of 3 and 4 symbols
  for a madd of 2 agree that it is long, and are blended);
- the estimate lies beyond the tolerance (above a ghunnah's length: the tolerance plus
  `ghunnah_long_slack_harakat`) by less than `uncertain_margin_harakat` (a frame
  of alignment error must not flip a verdict);
- the error's own probability is under `min_error_confidence`;
- `errors_need_agreement` is set and the two sources, each on its own, do not both say so.
Otherwise the sources are averaged with inverse-variance weights (a short madd leans on its
duration, a long one on its symbols, whose error does not grow with length), and the
estimate is compared with the expected length (or each permitted one) within the rule's
tolerance. The confidence is the probability, under that normal error, that the true
length lies in the verdict's interval. All of these numbers come from calibration.py.

Presence (shadda): each source gives P(present); they are averaged in log-odds. Two
sources each at least `presence_contradiction` sure of opposite answers give UNCERTAIN.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.tajweed.calibration import Calibration
from services.tajweed.model import Verdict

_EPS = 1e-3


class Doubt(enum.Enum):
    """Why a verdict is UNCERTAIN (NONE: it is not)."""

    NONE = "none"
    DISAGREE = "disagree"
    BORDERLINE = "borderline"
    WEAK = "weak"


def symbol_confidence(prob: float | None, floor: float = 0.55) -> float:
    """How sure a decoded symbol is: its probability (0.8 when unknown) kept within [floor, 0.99]."""
    return min(max(prob if prob is not None else 0.8, floor), 0.99)


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class Length:
    value: float
    sd: float


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    confidence: float
    estimate: float | None
    doubt: Doubt = Doubt.NONE


@dataclass(frozen=True)
class LengthPolicy:
    """How a length is judged: the rule's tolerance and the calibration's uncertain band."""

    tolerance: float
    margin: float
    min_error_confidence: float
    disagreement: float
    need_agreement: bool
    # Extra room above a length (a ghunnah's: calibration.ghunnah_long_slack_harakat).
    long_slack: float = 0.0

    @classmethod
    def of(cls, calibration: Calibration, tolerance: float, long_slack: float = 0.0) -> LengthPolicy:
        return cls(
            tolerance=tolerance,
            margin=calibration.uncertain_margin_harakat,
            min_error_confidence=calibration.min_error_confidence,
            disagreement=calibration.disagreement_harakat,
            need_agreement=calibration.errors_need_agreement,
            long_slack=long_slack,
        )

    def outside(self, value: float, length: float, reach: float) -> float:
        """How far `value` lies outside [length - reach, length + reach + long_slack] (0: inside)."""
        return max(length - reach - value, value - (length + reach + self.long_slack), 0.0)


def _probability_between(estimate: Length, low: float, high: float) -> float:
    sd = max(estimate.sd, _EPS)
    return normal_cdf((high - estimate.value) / sd) - normal_cdf((low - estimate.value) / sd)


def combine(duration: Length | None, symbols: Length | None) -> Length | None:
    sources = [s for s in (duration, symbols) if s is not None]
    if not sources:
        return None
    weights = [1.0 / max(s.sd, _EPS) ** 2 for s in sources]
    total = sum(weights)
    value = sum(w * s.value for w, s in zip(weights, sources, strict=True)) / total
    return Length(value, 1.0 / math.sqrt(total))


def _side(value: float, expected: float, allowed: Sequence[float], reach: float, policy: LengthPolicy) -> Verdict:
    """CORRECT within `reach` of an allowed length (plus the slack above it), else which side
    of the expected one."""
    if min(policy.outside(value, length, reach) for length in allowed) == 0.0:
        return Verdict.CORRECT
    return Verdict.TOO_SHORT if value < expected else Verdict.TOO_LONG


def judge_length(
    duration: Length | None,
    symbols: Length | None,
    *,
    expected: float,
    permitted: Sequence[float],
    policy: LengthPolicy,
) -> Judgement | None:
    """None when there is no evidence at all."""
    allowed = sorted(set(permitted) | {expected})
    tolerance = policy.tolerance
    if duration is not None and symbols is not None:
        gap = abs(duration.value - symbols.value)
        alone = {_side(source.value, expected, allowed, tolerance, policy) for source in (duration, symbols)}
        if len(alone) > 1 and gap >= policy.disagreement:
            z = gap / max(math.hypot(duration.sd, symbols.sd), _EPS)
            return Judgement(Verdict.UNCERTAIN, 2.0 * normal_cdf(z) - 1.0, None, Doubt.DISAGREE)
    estimate = combine(duration, symbols)
    if estimate is None:
        return None
    nearest = min(allowed, key=lambda length: policy.outside(estimate.value, length, tolerance))
    beyond = policy.outside(estimate.value, nearest, tolerance)
    if beyond == 0.0:
        high = nearest + tolerance + policy.long_slack
        confidence = _probability_between(estimate, nearest - tolerance, high)
        return Judgement(Verdict.CORRECT, confidence, estimate.value)
    verdict = _side(estimate.value, expected, allowed, tolerance, policy)
    if verdict == Verdict.TOO_SHORT:
        confidence = _probability_between(estimate, -math.inf, expected - tolerance)
    else:
        confidence = _probability_between(estimate, expected + tolerance + policy.long_slack, math.inf)
    if beyond <= policy.margin:
        return Judgement(Verdict.UNCERTAIN, 1.0 - confidence, estimate.value, Doubt.BORDERLINE)
    if confidence < policy.min_error_confidence:
        return Judgement(Verdict.UNCERTAIN, 1.0 - confidence, estimate.value, Doubt.WEAK)
    if policy.need_agreement and duration is not None and symbols is not None:
        reach = tolerance + policy.margin
        alone = {_side(source.value, expected, allowed, reach, policy) for source in (duration, symbols)}
        if alone != {verdict}:
            return Judgement(Verdict.UNCERTAIN, 1.0 - confidence, estimate.value, Doubt.DISAGREE)
    return Judgement(verdict, confidence, estimate.value)


@dataclass(frozen=True)
class Presence:
    """present: True/False, or None when the sources contradict each other."""

    present: bool | None
    confidence: float

    @property
    def verdict(self) -> Verdict:
        """CORRECT when present, MISSING when absent, UNCERTAIN when the sources contradict each other."""
        if self.present is None:
            return Verdict.UNCERTAIN
        return Verdict.CORRECT if self.present else Verdict.MISSING


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def fuse_presence(probabilities: Sequence[float], contradiction: float) -> Presence | None:
    if not probabilities:
        return None
    if max(probabilities) >= contradiction and min(probabilities) <= 1.0 - contradiction:
        return Presence(None, min(max(probabilities), 1.0 - min(probabilities)))
    mean_logit = sum(_logit(p) for p in probabilities) / len(probabilities)
    probability = 1.0 / (1.0 + math.exp(-mean_logit))
    present = probability >= 0.5
    return Presence(present, probability if present else 1.0 - probability)


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class Level(enum.Enum):
    """What one piece of evidence says about a presence: yes, no, or too weak to say."""

    YES = "yes"
    NO = "no"
    WEAK = "weak"


def level(value: float, present: float, absent: float) -> Level:
    """YES at or above `present`, NO at or below `absent`, WEAK between (a probability or a dB rise)."""
    if value >= present:
        return Level.YES
    if value <= absent:
        return Level.NO
    return Level.WEAK
