"""An advisory maqam estimate: the recitation's pitch-class distribution against scale templates.

Pitch classes are cents modulo the octave in 10-cent bins, so a reciter's tonic need not sit
on any tuning grid. Each template is a scale in cents above its tonic (quarter tones as 50
cents, the usual approximation of the Arabic neutral intervals), drawn as narrow bumps, and is
tried at every rotation. Several maqamat share one pitch set at different tonics (Rast and
Sikah; Kurd and Ajam), so the tonic matters: recitation settles on it at a stop, and the
pitch class of the last voiced stretch weighs in. The confidence is the best maqam's share of
a softmax over the maqamat' best scores: a hint for the learner, never a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.prosody.pitch import PitchTrack

BIN_CENTS = 10
BINS = 1200 // BIN_CENTS
SIGMA_CENTS = 20.0
TONIC_WEIGHT = 0.5
FINAL_S = 0.5
TEMPERATURE = 0.03

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


def _bumps(cents: tuple[int, ...], tonic_weight: float = 2.0) -> npt.NDArray[np.float64]:
    grid = np.arange(BINS) * BIN_CENTS
    out = np.zeros(BINS)
    for i, c in enumerate(cents):
        d = np.abs(((grid - c) + 600) % 1200 - 600)
        out += (tonic_weight if i == 0 else 1.0) * np.exp(-0.5 * (d / SIGMA_CENTS) ** 2)
    return out / np.linalg.norm(out)


TEMPLATES = {name: _bumps(cents) for name, cents in SCALES.items()}


def pitch_classes(f0_hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cents above A (440 Hz) modulo the octave."""
    return (1200.0 * np.log2(f0_hz / 440.0)) % 1200.0


def histogram(f0_hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    h = np.bincount((pitch_classes(f0_hz) // BIN_CENTS).astype(int) % BINS, minlength=BINS).astype(np.float64)
    # Circular smoothing over +-20 cents: a note sung slightly sharp still lands on its degree.
    kernel = np.exp(-0.5 * (np.arange(-3, 4) * BIN_CENTS / 15.0) ** 2)
    h = sum(k * np.roll(h, s) for s, k in zip(range(-3, 4), kernel, strict=True))
    n = np.linalg.norm(h)
    return h / n if n > 0 else h


def _circular_scores(hist: npt.NDArray[np.float64], template: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """score[r] = sum_k hist[(k + r) % BINS] * template[k]: the template with its tonic at bin r."""
    return np.real(np.fft.ifft(np.fft.fft(hist) * np.conj(np.fft.fft(template))))


def estimate(track: PitchTrack) -> MaqamEstimate | None:
    """None when fewer than half a second of voiced frames."""
    f0 = track.f0_hz[track.voiced]
    if len(f0) * track.hop_s < 0.5:
        return None
    hist = histogram(f0)
    final = f0[-max(1, int(FINAL_S / track.hop_s)) :]
    tonic_hint = histogram(final)
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
    tonic_cents = best[names[top]][1] * BIN_CENTS
    # The tonic's octave: the one nearest below the recitation's median.
    median = float(np.median(f0))
    tonic = 440.0 * 2 ** (tonic_cents / 1200.0)
    while tonic > median:
        tonic /= 2
    while tonic * 2 <= median:
        tonic *= 2
    return MaqamEstimate(
        name=names[top],
        confidence=float(probs[top]),
        tonic_hz=tonic,
        scores={n: round(float(v), 4) for n, v in zip(names, values, strict=True)},
    )
