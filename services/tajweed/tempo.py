"""The reciter's haraka, measured on the same recording.

A haraka is the time of one voweled letter (consonant + short vowel: one count of the
teacher's finger). Samples are the reference's CV groups (one consonant, one short
vowel), except those running into a madd or leen (where the script's split of the
vowel between the haraka and the madd symbols is arbitrary) and the last group (which
has no following onset). Their durations (timeline.py) are summarised in the log domain,
where tempo is a scale: samples more than 3 robust SDs (1.4826 x MAD, at least log 1.5)
from the median are dropped, and the rest averaged (an outlier-trimmed geometric mean).

Prior: `prior_haraka_s` (0.379 s, Husary's measured mean at murattal speed) scaled by the
requested recitation speed (mujawad 1.25, murattal 1.0, above_murattal 0.85, hadr 0.7:
assumed ratios, used only as a starting point) with a log-SD of `prior_log_sd` across
reciters. The estimate is the normal-normal posterior in log space: the sample median
(standard error ~1.25 x SD / sqrt(n), kept conservative) shrunk towards the prior, which matters only when
there are few samples (with 10 samples of SD 0.25 the prior's weight is ~5 %).
`from_prior` says there were fewer than `min_tempo_samples`.

Single consonants (for shadda): the same estimate over unvoweled single consonants, with
a prior of `consonant_ratio` x haraka.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.tajweed import phonetics
from services.tajweed.config import TajweedConfig
from services.tajweed.model import Reference, Tempo
from services.tajweed.timeline import Timeline

SPEED_FACTORS = {"mujawad": 1.25, "murattal": 1.0, "above_murattal": 0.85, "hadr": 0.7}
_MIN_LOG_SD = 0.1
_MEDIAN_EFFICIENCY = 1.25


@dataclass(frozen=True)
class _Estimate:
    value: float
    log_sd: float
    samples: int


def _robust(durations: Sequence[float], prior: float, prior_log_sd: float) -> _Estimate:
    logs = np.log(np.asarray([d for d in durations if d > 0], dtype=np.float64))
    if len(logs) == 0:
        return _Estimate(prior, prior_log_sd, 0)
    center = float(np.median(logs))
    spread = max(1.4826 * float(np.median(np.abs(logs - center))), _MIN_LOG_SD)
    kept = logs[np.abs(logs - center) <= max(3.0 * spread, math.log(1.5))]
    # The mean of the inliers: a median of durations quantised to 40 ms frames is biased
    # by up to half a frame, their mean is not.
    center = float(np.mean(kept))
    spread = max(1.4826 * float(np.median(np.abs(kept - center))), _MIN_LOG_SD)
    n = len(kept)
    sample_precision = n / (_MEDIAN_EFFICIENCY * spread) ** 2
    prior_precision = 1.0 / prior_log_sd**2
    total = sample_precision + prior_precision
    log_value = (sample_precision * center + prior_precision * math.log(prior)) / total
    return _Estimate(math.exp(log_value), 1.0 / math.sqrt(total), n)


def prior_haraka(config: TajweedConfig, recitation_speed: str | None) -> float:
    return config.prior_haraka_s * SPEED_FACTORS.get(recitation_speed or "murattal", 1.0)


def estimate(
    reference: Reference, timeline: Timeline | None, config: TajweedConfig, lengthened: frozenset[int]
) -> Tempo:
    """`lengthened`: indices of the groups a madd or leen rule lengthens."""
    prior = prior_haraka(config, reference.moshaf.get("recitation_speed"))
    groups = reference.groups
    vowels: list[float] = []
    consonants: list[float] = []
    if timeline is not None:
        for i, group in enumerate(groups[:-1]):
            following = groups[i + 1]
            if phonetics.is_cv_group(group):
                if phonetics.is_madd_group(following) or i + 1 in lengthened:
                    continue
                vowels.append(timeline.duration(i))
            elif phonetics.is_single_consonant(group):
                consonants.append(timeline.duration(i))
    haraka = _robust(vowels, prior, config.prior_log_sd)
    consonant = _robust(consonants, config.consonant_ratio * haraka.value, config.prior_log_sd)
    return Tempo(
        haraka_s=haraka.value,
        samples=haraka.samples,
        from_prior=haraka.samples < config.min_tempo_samples,
        consonant_s=consonant.value,
        haraka_log_sd=haraka.log_sd,
    )

