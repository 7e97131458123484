"""Signals of known truth for the prosody tests: harmonic tones whose f0 follows a given contour."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SR = 16000


def harmonic(
    f0_hz: npt.NDArray[np.float64], sr: int = SR, harmonics: int = 12, noise_db: float | None = None, seed: int = 0
) -> npt.NDArray[np.float32]:
    """A voice-like tone: harmonics falling 6 dB/octave, phase integrated from a per-sample f0
    (0 Hz samples are silent). noise_db: white noise at that level relative to the tone's RMS."""
    f0 = np.asarray(f0_hz, dtype=np.float64)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = np.zeros(len(f0))
    for k in range(1, harmonics + 1):
        alias = k * f0 < sr / 2
        x += np.where(alias, np.sin(k * phase) / k, 0.0)
    x *= f0 > 0
    x *= 0.3 / max(np.sqrt(np.mean(x[f0 > 0] ** 2)) if (f0 > 0).any() else 1.0, 1e-9)
    if noise_db is not None:
        rms = np.sqrt(np.mean(x[f0 > 0] ** 2))
        x = x + np.random.default_rng(seed).normal(0, rms * 10 ** (noise_db / 20), len(x))
    return x.astype(np.float32)


def contour(kind: str, seconds: float = 2.0, sr: int = SR) -> npt.NDArray[np.float64]:
    """Per-sample f0 of a named contour: glide, step, vibrato (with 0.3 s of silence either side)."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind == "glide":
        f0 = 120.0 * 2 ** (t / seconds)  # one octave up
    elif kind == "step":
        f0 = np.where(t < seconds / 2, 150.0, 150.0 * 2 ** (4 / 12))
    elif kind == "vibrato":
        f0 = 200.0 * 2 ** (0.5 / 12 * np.sin(2 * np.pi * 5.5 * t))
    else:
        raise ValueError(kind)
    pad = np.zeros(int(0.3 * sr))
    return np.concatenate([pad, f0, pad])


def frame_truth(f0_samples: npt.NDArray[np.float64], hop_s: float = 0.01, sr: int = SR) -> npt.NDArray[np.float64]:
    """The true f0 at each frame centre of the 10 ms grid."""
    n = int(len(f0_samples) / sr / hop_s) + 1
    idx = np.clip((np.arange(n) * hop_s * sr).astype(int), 0, len(f0_samples) - 1)
    return f0_samples[idx]


def scale_phrase(
    cents: tuple[int, ...], tonic_hz: float, note_s: float = 0.25, sr: int = SR
) -> npt.NDArray[np.float64]:
    """Per-sample f0 of a phrase up the scale to the octave and back down, ending long on the tonic."""
    degrees = [*cents, 1200, *reversed(cents)]
    parts = [np.full(int(note_s * sr), tonic_hz * 2 ** (c / 1200)) for c in degrees]
    parts.append(np.full(int(0.6 * sr), tonic_hz))
    return np.concatenate(parts)


def melody_of(
    f0_hz: npt.NDArray[np.float64], voiced: npt.NDArray[np.bool_], hop_s: float, semitones: float = 0.0, sr: int = SR
) -> npt.NDArray[np.float64]:
    """Per-sample f0 of a pitch track's melody moved by `semitones`: log-f0 interpolated between the
    voiced frames, 0 Hz on unvoiced ones. Rendered with `harmonic`, it is an exact transposition of a
    real recitation's melody (no phase vocoder, so nothing but the key differs between the copies)."""
    t = np.arange(int(len(f0_hz) * hop_s * sr)) / sr
    frame = np.clip(np.round(t / hop_s).astype(int), 0, len(f0_hz) - 1)
    frames = np.flatnonzero(voiced)
    log_f0 = np.interp(t, frames * hop_s, np.log2(f0_hz[frames]))
    return np.where(voiced[frame], 2.0 ** (log_f0 + semitones / 12.0), 0.0)
