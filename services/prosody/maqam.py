"""An advisory maqam estimate: the recitation's pitch-class distribution against scale templates.

Everything is relative to the recording itself, so that a transposed copy of it gives the same
answer: pitch classes are cents above the recording's own median f0 (not above A440), spread
onto 5-cent bins by linear interpolation (no bin edges a note can straddle on one copy and not
on the other) and smoothed circularly. Each template is a scale in cents above its tonic
(quarter tones as 50 cents, the usual approximation of the Arabic neutral intervals), drawn as
narrow bumps, and is tried with its tonic on every one of the 240 bins. Several maqamat share
one pitch set at different tonics (Rast and Sikah; Kurd and Ajam), so the tonic matters:
recitation settles on it at a stop, and the pitch classes of the last half second weigh in.
Frames count by the tracker's confidence: the barely-voiced frames are the ones any processing
of the audio (a transposition, a codec) voices or drops, and they must not decide the tonic.

A short or narrow recitation often cannot tell two maqamat apart (Kurd and Hijaz differ in one
degree it may never sing; a neutral second measured at 125 cents is as much Sikah's 150 as
Kurd's 100): their scores then differ by less than RESOLUTION, and which one wins is decided by
a few cents of tracker noise. `estimate(..., prefer=name)` keeps `name` in that case (the
comparison passes the teacher's maqam), so such noise never reads as a different maqam. The
confidence is the chosen maqam's share of a softmax over the maqamat' best scores: a hint for
the learner, never a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.prosody.pitch import VOICING_THRESHOLD, PitchTrack

BIN_CENTS = 5
BINS = 1200 // BIN_CENTS
SIGMA_CENTS = 20.0
SMOOTH_CENTS = 15.0
TONIC_WEIGHT = 0.5
FINAL_S = 0.5
TEMPERATURE = 0.03
# Confidence at which a frame counts fully; from VOICING_THRESHOLD up to here its weight ramps from 0.
FULL_CONFIDENCE = 0.9
# Score differences under this are noise, not evidence. Measured: on the synthetic scale phrases of
# tests/prosody and their copies pitch-shifted by -3..+3 semitones, the true maqam beats every
# other by 0.046 or more (the nearest: Bayati against Saba and Kurd, one degree apart); on copies
# of the three test recordings transposed by -3..+3 semitones, the original's maqam scores at
# most 0.025 below the copy's best.
RESOLUTION = 0.035

FloatArray = npt.NDArray[np.float64]

# Scale degrees in cents above the tonic (the lower octave of the maqam as usually taught).
SCALES: dict[str, tuple[int, ...]] = {
    "Rast": (0, 200, 350, 500, 700, 900, 1050),
    "Bayati": (0, 150, 300, 500, 700, 800, 1000),
    "Saba": (0, 150, 300, 400, 700, 800, 1000),
    "Hijaz": (0, 100, 400, 500, 700, 800, 1000),
    "Nahawand": (0, 200, 300, 500, 700, 800, 1100),
    "Sikah": (0, 150, 350, 550, 700, 850, 1050),
    "Ajam": (0, 200, 400, 500, 700, 900, 1100),
    "Kurd": (0, 100, 300, 500, 700, 800, 1000),
}


@dataclass(frozen=True)
class MaqamEstimate:
    name: str
    confidence: float
    tonic_hz: float
    scores: dict[str, float]


def _circular_distance(cents: FloatArray, centre: float) -> FloatArray:
    return np.abs(((cents - centre) + 600.0) % 1200.0 - 600.0)


_GRID_CENTS: FloatArray = np.arange(BINS, dtype=np.float64) * BIN_CENTS


def _bumps(cents: tuple[int, ...], tonic_weight: float = 2.0) -> FloatArray:
    out = np.zeros(BINS)
    for i, c in enumerate(cents):
        d = _circular_distance(_GRID_CENTS, float(c))
        out += (tonic_weight if i == 0 else 1.0) * np.exp(-0.5 * (d / SIGMA_CENTS) ** 2)
    return out / np.linalg.norm(out)


TEMPLATES = {name: _bumps(cents) for name, cents in SCALES.items()}
# The smoothing kernel's spectrum, centred on bin 0 (circular).
_SMOOTHING = np.fft.fft(np.exp(-0.5 * (_circular_distance(_GRID_CENTS, 0.0) / SMOOTH_CENTS) ** 2))


def histogram(cents: FloatArray, weights: FloatArray) -> FloatArray:
    """Unit-norm weighted distribution of pitch classes (cents modulo the octave) on BINS bins."""
    pos = (np.asarray(cents, dtype=np.float64) % 1200.0) / BIN_CENTS
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    # Each frame split between its two nearest bins: a note moved by a few cents moves its mass
    # by a few cents, instead of jumping a whole bin when it crosses an edge.
    counts = np.bincount(lo % BINS, weights * (1.0 - frac), minlength=BINS).astype(np.float64)
    counts += np.bincount((lo + 1) % BINS, weights * frac, minlength=BINS)
    # Circular smoothing over +-15 cents: a note sung slightly sharp still lands on its degree.
    h: FloatArray = np.real(np.fft.ifft(np.fft.fft(counts) * _SMOOTHING))
    n = float(np.linalg.norm(h))
    return h / n if n > 0 else h


def _circular_scores(hist: FloatArray, template: FloatArray) -> FloatArray:
    """score[r] = sum_k hist[(k + r) % BINS] * template[k]: the template with its tonic at bin r."""
    return np.real(np.fft.ifft(np.fft.fft(hist) * np.conj(np.fft.fft(template))))


def frame_weights(track: PitchTrack) -> FloatArray:
    """0 for unvoiced frames, rising from 0 at the voicing threshold to 1 at FULL_CONFIDENCE."""
    ramp = (track.confidence - VOICING_THRESHOLD) / (FULL_CONFIDENCE - VOICING_THRESHOLD)
    return np.where(track.voiced, np.clip(ramp, 0.0, 1.0), 0.0)


def estimate(track: PitchTrack, prefer: str | None = None) -> MaqamEstimate | None:
    """None when fewer than half a second of voiced frames (or none above the voicing threshold).
    `prefer`: the maqam to keep when its score is within RESOLUTION of the best one (the evidence
    cannot tell them apart)."""
    voiced = np.flatnonzero(track.voiced)
    if len(voiced) * track.hop_s < 0.5:
        return None
    weights = frame_weights(track)[voiced]
    if not weights.any():
        return None
    reference_hz = float(np.median(track.f0_hz[voiced]))
    # Cents above the recording's own median: a transposed copy has the same values.
    cents = 1200.0 * np.log2(track.f0_hz[voiced] / reference_hz)
    hist = histogram(cents, weights)
    # The last FINAL_S seconds of time (not of voiced frames): frames voiced on one copy and not
    # on another must not pull earlier notes into the window.
    final = voiced >= voiced[-1] + 1 - round(FINAL_S / track.hop_s)
    tonic_hint = histogram(cents[final], weights[final])
    best: dict[str, tuple[float, int]] = {}
    for name, template in TEMPLATES.items():
        scores = _circular_scores(hist, template) + TONIC_WEIGHT * tonic_hint
        r = int(np.argmax(scores))
        best[name] = (float(scores[r]), r)
    names = list(best)
    values = np.array([best[n][0] for n in names])
    probs = np.exp((values - values.max()) / TEMPERATURE)
    probs /= probs.sum()
    top = int(np.argmax(values))
    if prefer in best and values[top] - best[prefer][0] <= RESOLUTION:
        top = names.index(prefer)
    tonic = reference_hz * 2 ** (best[names[top]][1] * BIN_CENTS / 1200.0)
    # The tonic's octave: the one nearest below the recitation's median.
    while tonic > reference_hz:
        tonic /= 2
    while tonic * 2 <= reference_hz:
        tonic *= 2
    return MaqamEstimate(
        name=names[top],
        confidence=float(probs[top]),
        tonic_hz=tonic,
        scores={n: round(float(v), 4) for n, v in zip(names, values, strict=True)},
    )
