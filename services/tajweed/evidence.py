"""Turning measurements into verdicts with a confidence.

Lengths (madd, ghunnah): each source of evidence is a value in harakat with a standard
deviation: the aligned duration (relative spread `duration_rel_sd`, plus the tempo's own
uncertainty) and the decoded symbol count (`symbol_sd_harakat`). Two sources that differ
by `disagreement` harakat or more give UNCERTAIN; otherwise they are averaged with
inverse-variance weights (a short madd leans on its duration, a long one on its symbols,
whose error does not grow with length). The verdict compares the estimate with the
expected length (or with each permitted one) within the tolerance; the confidence is the
probability, under that normal error, that the true length lies in the verdict's interval.

Presence (shadda, qalqalah, ghunnah's nasality): each source gives P(present); they are
averaged in log-odds. Two sources that are each sure (>= 0.8) of opposite answers give
UNCERTAIN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from services.tajweed.model import Verdict

_STRONG = 0.8
_EPS = 1e-3


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


def judge_length(
    duration: Length | None,
    symbols: Length | None,
    *,
    expected: float,
    permitted: Sequence[float],
    tolerance: float,
    disagreement: float,
) -> Judgement | None:
    """None when there is no evidence at all."""
    if duration is not None and symbols is not None and abs(duration.value - symbols.value) >= disagreement:
        spread = math.hypot(duration.sd, symbols.sd)
        z = abs(duration.value - symbols.value) / max(spread, _EPS)
        return Judgement(Verdict.UNCERTAIN, 2.0 * normal_cdf(z) - 1.0, None)
    estimate = combine(duration, symbols)
    if estimate is None:
        return None
    allowed = sorted(set(permitted) | {expected})
    nearest = min(allowed, key=lambda length: abs(length - estimate.value))
    if abs(nearest - estimate.value) <= tolerance:
        confidence = _probability_between(estimate, nearest - tolerance, nearest + tolerance)
        return Judgement(Verdict.CORRECT, confidence, estimate.value)
    if estimate.value < expected:
        confidence = _probability_between(estimate, -math.inf, expected - tolerance)
        return Judgement(Verdict.TOO_SHORT, confidence, estimate.value)
    confidence = _probability_between(estimate, expected + tolerance, math.inf)
    return Judgement(Verdict.TOO_LONG, confidence, estimate.value)


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


def fuse_presence(probabilities: Sequence[float]) -> Presence | None:
    if not probabilities:
        return None
    if max(probabilities) >= _STRONG and min(probabilities) <= 1.0 - _STRONG:
        contradiction = min(max(probabilities), 1.0 - min(probabilities))
        return Presence(None, contradiction)
    mean_logit = sum(_logit(p) for p in probabilities) / len(probabilities)
    probability = 1.0 / (1.0 + math.exp(-mean_logit))
    present = probability >= 0.5
    return Presence(present, probability if present else 1.0 - probability)


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
