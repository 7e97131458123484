"""Frame features for aligning two recitations without a model that hears: log mel energies
with the recording's mean removed (so microphone and level differences cancel), on the 10 ms
grid of the pitch track. Timbre rather than pitch: a learner in another key still lines up."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

N_FFT = 512
WIN_S = 0.025
N_MELS = 26


@lru_cache(maxsize=4)
def mel_filters(sr: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> npt.NDArray[np.float64]:
    def mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_mel = np.linspace(mel(np.array(80.0)), mel(np.array(min(7600.0, sr / 2))), n_mels + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    bank = np.zeros((n_mels, len(freqs)))
    for k in range(n_mels):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        bank[k] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return bank


def log_mel(samples: npt.NDArray[np.floating], sr: int, hop_s: float = 0.01) -> npt.NDArray[np.float64]:
    """(frames, N_MELS), frame i centred on i * hop_s, mean-normalised per band."""
    x = np.asarray(samples, dtype=np.float64)
    hop, win = round(hop_s * sr), round(WIN_S * sr)
    frames = 1 + len(x) // hop
    padded = np.zeros(len(x) + win + hop)
    padded[win // 2 : win // 2 + len(x)] = x
    idx = np.arange(frames)[:, None] * hop + np.arange(win)[None, :]
    spec = np.abs(np.fft.rfft(padded[idx] * np.hanning(win), N_FFT)) ** 2
    feats = np.log(spec @ mel_filters(sr).T + 1e-8)
    return feats - feats.mean(axis=0, keepdims=True)
