"""Small signal tools in numpy: resampling, time-stretching (WSOLA), trimming, joining.

No scipy here: the reciter needs only these few operations and they are short.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]

RATE = 16_000


def _lowpass_taps(cutoff: float, taps: int = 63) -> npt.NDArray[np.float64]:
    """Windowed-sinc low-pass FIR; cutoff as a fraction of the input rate (0..0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    return h / h.sum()


def resample(x: Audio, rate_in: int, rate_out: int = RATE) -> Audio:
    """Band-limits to 95 % of the lower Nyquist, then interpolates linearly."""
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float32)
    if rate_out < rate_in:
        x = np.convolve(x, _lowpass_taps(0.475 * rate_out / rate_in), mode="same").astype(np.float32)
    duration = len(x) / rate_in
    n_out = max(1, round(duration * rate_out))
    t_out = np.arange(n_out) / rate_out
    return np.interp(t_out, np.arange(len(x)) / rate_in, x).astype(np.float32)


def frame_energy_db(x: Audio, hop: int = 160, win: int = 400) -> npt.NDArray[np.float64]:
    """dB energy of 25 ms frames every 10 ms (at 16 kHz)."""
    if len(x) < win:
        return np.array([10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12)])
    count = 1 + (len(x) - win) // hop
    index = np.arange(win)[None, :] + hop * np.arange(count)[:, None]
    power = np.mean(np.square(x[index], dtype=np.float64), axis=1)
    return np.asarray(10 * np.log10(power + 1e-12))


def trim(x: Audio, below_peak_db: float = 35.0) -> Audio:
    """Cuts leading and trailing frames quieter than below_peak_db under the loudest frame."""
    db = frame_energy_db(x)
    loud = np.flatnonzero(db > db.max() - below_peak_db)
    if len(loud) == 0:
        return x
    return x[loud[0] * 160 : min(len(x), loud[-1] * 160 + 400)]


def sounding_core(x: Audio, below_peak_db: float) -> Audio:
    """The longest run of 10 ms frames within below_peak_db of the loudest frame: a clip's
    sounding part, without the silence, the faint decay or the click espeak-ng leaves around it.
    A clip with no such run (all silent) comes back whole."""
    db = frame_energy_db(x)
    loud = db > db.max() - below_peak_db
    if db.max() < -100.0 or loud.all():
        return x
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return x[starts[longest] * 160 : min(len(x), (ends[longest] - 1) * 160 + 400)]


def loudest_window(x: Audio, length: int) -> Audio:
    """The `length` samples of x with the most energy (all of x if it is no longer)."""
    if len(x) <= length:
        return x
    power = np.cumsum(np.square(x, dtype=np.float64))
    sums = power[length - 1 :] - np.concatenate([[0.0], power[: len(x) - length]])
    start = int(np.argmax(sums))
    return x[start : start + length]


def stretch(x: Audio, target: int) -> Audio:
    """WSOLA: x played over `target` samples at its own pitch.

    Frames of 20 ms are overlap-added every 10 ms; each is taken near where the time map puts
    it, shifted (within 5 ms) to best continue the previous frame's waveform.
    """
    win, hop, tol = 320, 160, 80
    if target <= 0:
        return np.zeros(0, dtype=np.float32)
    if len(x) < win + 2 * tol:
        # Too short to overlap-add: repeat or cut (used only for very short release bursts).
        reps = int(np.ceil(target / max(1, len(x))))
        return np.tile(x, reps)[:target].astype(np.float32)
    window = np.hanning(win).astype(np.float32)
    frames = int(np.ceil(target / hop)) + 1
    out = np.zeros(frames * hop + win, dtype=np.float32)
    norm = np.zeros_like(out)
    ratio = (len(x) - win) / max(1, (frames - 1) * hop)
    previous_end = 0
    for k in range(frames):
        nominal = round(k * hop * ratio)
        if k == 0:
            start = 0
        else:
            # The natural continuation of the last frame, and candidates around the nominal place.
            wanted = x[previous_end : previous_end + win] if previous_end + win <= len(x) else None
            lo, hi = max(0, nominal - tol), min(len(x) - win, nominal + tol)
            if wanted is None or hi <= lo:
                start = min(max(0, nominal), len(x) - win)
            else:
                segment = x[lo : hi + win]
                score = np.correlate(segment, wanted[: win // 2], mode="valid")[: hi - lo + 1]
                start = lo + int(np.argmax(score))
        out[k * hop : k * hop + win] += x[start : start + win] * window
        norm[k * hop : k * hop + win] += window
        previous_end = start + hop
    norm[norm < 1e-3] = 1.0
    return (out / norm)[:target].astype(np.float32)


def fade(x: Audio, samples: int = 48) -> Audio:
    """Short raised-cosine fades at both ends, so that joined pieces do not click."""
    y = x.copy()
    n = min(samples, len(y) // 2)
    if n:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))).astype(np.float32)
        y[:n] *= ramp
        y[-n:] *= ramp[::-1]
    return y


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * RATE), dtype=np.float32)
