"""The reciter's haraka and the lengths the validators compare with, measured on the same recording.

The model of a recitation the validators share (services/synth/render.py renders the same
one): a voweled letter (its consonant and short vowel) lasts one haraka; each madd symbol
adds a haraka to the vowel before it; a shadda holds its consonant one consonant longer; a
ghunnah holds the nasal 2 harakat. Measured from the segments of timeline.py:
- haraka: a short voweled letter (one consonant and its short vowel, not lengthened by a
  madd), from its consonant's first frame to the end of its nucleus;
- short vowel: the same letters' nuclei (the consonant's end to the next consonant);
- sakin consonant: a single unvoweled consonant followed by a consonant, onset to onset;
- onset: a voweled letter's consonant's own frames (the part of a held consonant that is
  not the hold: shadda.py and ghunnah.py subtract it).
So a madd's nucleus lasts one short vowel plus n harakat, and madd.py measures
n = (nucleus - short vowel) / haraka: the consonant spikes' own length cancels, wherever
inside the nucleus the vowel spikes fall.

Each is summarised in the log domain, where tempo is a scale: samples more than
`outlier_sd` robust SDs (1.4826 x MAD, at least log 1.5) from the median are dropped (a
breath or a hesitation inside a word), the rest averaged (a median of durations quantised
to 40 ms frames is biased by up to half a frame, their mean is not).

Prior: `prior_haraka_s` (0.379 s, Husary's measured mean at murattal speed) scaled by the
requested recitation speed (mujawad 1.25, murattal 1.0, above_murattal 0.85, hadr 0.7:
assumed ratios, used only as a starting point) with a log-SD of `prior_log_sd` across
reciters; the short vowel's and the sakin consonant's priors are `vowel_ratio` and
`consonant_ratio` of the haraka. The estimate is the normal-normal posterior in log space:
the samples' centre (standard error ~1.25 x SD / sqrt(n), kept conservative) shrunk towards
the prior, which matters only when there are few samples. `from_prior` says there were
fewer than `min_tempo_samples` voweled letters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.tajweed import phonetics
from services.tajweed.calibration import Calibration
from services.tajweed.model import Reference, Tempo
from services.tajweed.timeline import Timeline

SPEED_FACTORS = {"mujawad": 1.25, "murattal": 1.0, "above_murattal": 0.85, "hadr": 0.7}
_MIN_LOG_SD = 0.1
_MEDIAN_EFFICIENCY = 1.25
_MIN_OUTLIER_LOG = math.log(1.5)


@dataclass(frozen=True)
class _Estimate:
    value: float
    log_sd: float
    samples: int


@dataclass(frozen=True)
class Samples:
    """Durations (seconds) of the recording's short voweled letters and the parts the validators use."""

    letters: tuple[float, ...]
    vowels: tuple[float, ...]
    consonants: tuple[float, ...]
    onsets: tuple[float, ...]


def _robust(durations: Sequence[float], prior: float, prior_log_sd: float, outlier_sd: float) -> _Estimate:
    logs = np.log(np.asarray([d for d in durations if d > 0], dtype=np.float64))
    if len(logs) == 0:
        return _Estimate(prior, prior_log_sd, 0)
    center = float(np.median(logs))
    spread = max(1.4826 * float(np.median(np.abs(logs - center))), _MIN_LOG_SD)
    kept = logs[np.abs(logs - center) <= max(outlier_sd * spread, _MIN_OUTLIER_LOG)]
    center = float(np.mean(kept))
    spread = max(1.4826 * float(np.median(np.abs(kept - center))), _MIN_LOG_SD)
    n = len(kept)
    sample_precision = n / (_MEDIAN_EFFICIENCY * spread) ** 2
    prior_precision = 1.0 / prior_log_sd**2
    total = sample_precision + prior_precision
    log_value = (sample_precision * center + prior_precision * math.log(prior)) / total
    return _Estimate(math.exp(log_value), 1.0 / math.sqrt(total), n)


def prior_haraka(calibration: Calibration, recitation_speed: str | None) -> float:
    return calibration.prior_haraka_s * SPEED_FACTORS.get(recitation_speed or "murattal", 1.0)


def samples(reference: Reference, timeline: Timeline) -> Samples:
    letters: list[float] = []
    vowels: list[float] = []
    consonants: list[float] = []
    onsets: list[float] = []
    for group in reference.groups:
        consonant = timeline.segment(group.start)
        if consonant.vowel:
            continue
        if phonetics.is_cv_group(group):
            nucleus = timeline.segment(group.end - 1)
            onsets.append(consonant.duration)
            # A nucleus holding more than this vowel is lengthened by a madd; the last one's end
            # is a guess without an energy envelope.
            if (nucleus.first, nucleus.last) != (group.end - 1, group.end) or timeline.is_last(nucleus):
                continue
            letters.append(nucleus.end_s - consonant.start_s)
            vowels.append(nucleus.duration)
        elif phonetics.is_single_consonant(group):
            following = timeline.following(consonant)
            if following is None or following.vowel or timeline.silence_after(group.end - 1) is not None:
                continue
            consonants.append(consonant.duration)
    return Samples(tuple(letters), tuple(vowels), tuple(consonants), tuple(onsets))


def estimate(
    reference: Reference, timeline: Timeline | None, calibration: Calibration, frame_s: float
) -> Tempo:
    prior = prior_haraka(calibration, reference.moshaf.get("recitation_speed"))
    measured = samples(reference, timeline) if timeline is not None else Samples((), (), (), ())
    sd, outlier = calibration.prior_log_sd, calibration.outlier_sd
    haraka = _robust(measured.letters, prior, sd, outlier)
    vowel = _robust(measured.vowels, calibration.vowel_ratio * haraka.value, sd, outlier)
    consonant = _robust(measured.consonants, calibration.consonant_ratio * haraka.value, sd, outlier)
    # A spike's own length, not a duration of speech: the plain median (one frame when unknown).
    onset = float(np.median(measured.onsets)) if measured.onsets else frame_s
    return Tempo(
        haraka_s=haraka.value,
        samples=haraka.samples,
        from_prior=haraka.samples < calibration.min_tempo_samples,
        consonant_s=consonant.value,
        haraka_log_sd=haraka.log_sd,
        vowel_s=min(vowel.value, haraka.value),
        onset_s=onset,
    )
