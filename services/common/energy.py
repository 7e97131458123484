"""Short-time energy of a recording: one implementation for every stage that reads loudness.

The tajweed stage (through the gateway, which computes it while the ASR runs) and the prosody
stage both read it. Numpy only, vectorised with a cumulative sum, so a minute of audio takes
milliseconds. Frame i is centred on i * hop_s (the signal is zero-padded by half a window at
either end), which makes "the frame at time t" simply round(t / hop_s).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# RMS of 1e-5 (-100 dBFS) stands for digital silence instead of -inf.
FLOOR_DB = -100.0
_FLOOR_POWER = 10.0 ** (FLOOR_DB / 10.0)


def energy_envelope(
    samples: npt.NDArray[np.floating], sample_rate: int = 16000, hop_s: float = 0.01, win_s: float = 0.025
) -> tuple[npt.NDArray[np.float32], float]:
    """RMS energy in dBFS per hop of mono float samples in [-1, 1]; returns (db, actual hop in seconds)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples must be one-dimensional (mono), got shape {x.shape}")
    if sample_rate <= 0 or hop_s <= 0 or win_s <= 0:
        raise ValueError("sample_rate, hop_s and win_s must be positive")
    hop = max(1, round(hop_s * sample_rate))
    win = max(1, round(win_s * sample_rate))
    frames = 1 + len(x) // hop
    half = win // 2
    padded = np.zeros(len(x) + win + hop, dtype=np.float64)
    padded[half : half + len(x)] = x
    cumulative = np.concatenate(([0.0], np.cumsum(padded * padded)))
    starts = np.arange(frames) * hop
    power = (cumulative[starts + win] - cumulative[starts]) / win
    db = 10.0 * np.log10(np.maximum(power, _FLOOR_POWER))
    return db.astype(np.float32), hop / sample_rate
