"""Viterbi CTC forced alignment, compiled with numba, over a band of the lattice.

The lattice has S = 2L + 1 states per frame: a blank before, between and after the L
reference tokens (state 2k + 1 is token k, even states are blanks). A path stays, moves one
state, or skips the blank between two tokens that differ; identical neighbours (a madd run,
a shadda) must pass through the blank between them, which is why L tokens with R repeated
neighbours need at least L + R frames.

Memory: the scores need two rows; the backpointers need one byte per (frame, state) cell
kept. For long audio only a band of states around the uniform diagonal (state S * t / T at
frame t) is kept, so the table is T x band width bytes instead of T x S, and never more than
the table budget. Every large array is allocated here, in numpy (the kernel allocates
nothing), so the budget and tracemalloc see all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from services.common.errors import FailedPrecondition, ResourceExhausted

IntArray = npt.NDArray[np.int64]
# The narrowest band worth running: a path moves up to two states a frame.
_MIN_HALF_WIDTH = 2
# The automatic band's first width, in frames either side of the diagonal (20 s): audio up
# to 40 s (1,000 frames) gets the whole lattice; longer audio starts here and widens when
# it must.
AUTO_BAND_FRAMES = 500


def required_frames(ids: npt.NDArray[np.integer]) -> int:
    """Frames a CTC path over `ids` needs: one per token plus a blank per repeated neighbour."""
    return int(ids.size + np.count_nonzero(ids[1:] == ids[:-1]))


@dataclass(frozen=True)
class Band:
    """The states kept at each frame: lo[t]..hi[t] inclusive."""

    lo: IntArray
    hi: IntArray
    # States either side of the diagonal, and the same in frames; None for the whole lattice.
    half_width: int | None
    frames: int | None

    @property
    def width(self) -> int:
        return int((self.hi - self.lo).max()) + 1


@dataclass(frozen=True)
class Path:
    """The best path, as each token's run of frames [starts[k], ends[k])."""

    starts: IntArray
    ends: IntArray
    log_prob: float
    band: Band
    # The path ran along an edge of a partial band: a wider band might have found a better one.
    touched_band_edge: bool


def _full_band(num_frames: int, num_states: int) -> Band:
    return Band(
        lo=np.zeros(num_frames, dtype=np.int64),
        hi=np.full(num_frames, num_states - 1, dtype=np.int64),
        half_width=None,
        frames=None,
    )


def _diagonal_band(num_frames: int, num_states: int, half_width: int) -> Band:
    centre = (np.arange(num_frames) + 0.5) * (num_states / num_frames) - 0.5
    lo = np.clip(np.floor(centre - half_width), 0, num_states - 1).astype(np.int64)
    hi = np.clip(np.ceil(centre + half_width), 0, num_states - 1).astype(np.int64)
    lo[0] = 0
    hi[-1] = num_states - 1
    frames = math.ceil(half_width * num_frames / num_states)
    return Band(lo=lo, hi=hi, half_width=half_width, frames=frames)


def _band_for(num_frames: int, num_states: int, half_width: int | None) -> Band:
    if half_width is None or 2 * half_width + 2 >= num_states:
        return _full_band(num_frames, num_states)
    return _diagonal_band(num_frames, num_states, half_width)


def _max_half_width(num_frames: int, num_states: int, max_table_bytes: int) -> int | None:
    """The widest half-width (in states) whose table fits the budget; None: the whole lattice."""
    width = max_table_bytes // num_frames
    if width >= num_states:
        return None
    half = (width - 2) // 2
    if half < _MIN_HALF_WIDTH:
        need_mb = num_frames * (2 * _MIN_HALF_WIDTH + 2) / 2**20
        raise ResourceExhausted(
            f"aligning {num_frames} frames needs a backpointer table of at least {need_mb:.1f} MiB; "
            f"the limit is {max_table_bytes / 2**20:.1f} MiB (MUAALEM_ALIGNMENT_MAX_TABLE_MB)"
        )
    return half


# Positional arrays: numba compiles one specialisation per signature and takes no keyword-only
# arguments. nogil lets concurrent calls (asyncio.to_thread) run on several cores.
@numba.njit(cache=True, nogil=True)
def _viterbi_kernel(
    log_probs: npt.NDArray[np.float32],
    labels: IntArray,
    skip_penalty: npt.NDArray[np.float64],
    lo: IntArray,
    hi: IntArray,
    back: npt.NDArray[np.int8],
    prev: npt.NDArray[np.float64],
    cur: npt.NDArray[np.float64],
    starts: IntArray,
    ends: IntArray,
) -> tuple[float, bool]:
    # Score rows hold state lo[t] + j at index j + 2; the two cells below and the cells above
    # the band stay -inf, so the inner loop reads its three predecessors without range checks
    # (about twice as fast as checking them). skip_penalty is 0 where a token may be reached
    # from the token two states back and -inf where it may not (first token, repeats).
    num_frames = log_probs.shape[0]
    num_states = labels.shape[0]
    neg = -np.inf
    prev[:] = neg
    cur[:] = neg
    # A path starts on the leading blank or on the first token.
    for s in range(lo[0], min(hi[0], 1) + 1):
        prev[s - lo[0] + 2] = log_probs[0, labels[s]]
        back[0, s - lo[0]] = 0
    for t in range(1, num_frames):
        clo = lo[t]
        count = hi[t] - clo + 1
        shift = clo - lo[t - 1] + 2
        row = log_probs[t]
        steps = back[t]
        for j in range(count):
            s = clo + j
            best = prev[j + shift]
            step = 0
            if prev[j + shift - 1] > best:
                best = prev[j + shift - 1]
                step = 1
            if prev[j + shift - 2] + skip_penalty[s] > best:
                best = prev[j + shift - 2] + skip_penalty[s]
                step = 2
            steps[j] = step
            cur[j + 2] = best + row[labels[s]]
        if t + 1 < num_frames:
            # The next frame reads up to its top state; above this band those are -inf.
            for i in range(count + 2, hi[t + 1] - clo + 3):
                cur[i] = neg
        prev, cur = cur, prev
    # A path ends on the last token or on the trailing blank.
    last = num_frames - 1
    s = num_states - 1
    best = prev[s - lo[last] + 2]
    if num_states - 2 >= lo[last] and prev[num_states - lo[last]] > best:
        s = num_states - 2
        best = prev[s - lo[last] + 2]
    if best == neg:
        return neg, False
    touched = False
    for t in range(last, -1, -1):
        if s & 1:
            k = s >> 1
            if ends[k] < 0:
                ends[k] = t + 1
            starts[k] = t
        if (s == lo[t] and lo[t] > 0) or (s == hi[t] and hi[t] < num_states - 1):
            touched = True
        s -= back[t, s - lo[t]]
    return best, touched


def _run(log_probs: npt.NDArray[np.float32], ids: IntArray, band: Band) -> Path | None:
    num_states = 2 * ids.size + 1
    labels = np.zeros(num_states, dtype=np.int64)
    labels[1::2] = ids
    skip_penalty = np.full(num_states, -np.inf)
    skip_penalty[3::2] = np.where(ids[1:] != ids[:-1], 0.0, -np.inf)
    back = np.empty((log_probs.shape[0], band.width), dtype=np.int8)
    # A row must hold the 2 cells below the band and every state a frame reads from the frame
    # before: up to hi[t] - lo[t - 1].
    reach = int((band.hi[1:] - band.lo[:-1]).max(initial=0)) + 1
    row = max(band.width, reach) + 2
    starts = np.full(ids.size, -1, dtype=np.int64)
    ends = np.full(ids.size, -1, dtype=np.int64)
    score, touched = _viterbi_kernel(
        log_probs,
        labels,
        skip_penalty,
        band.lo,
        band.hi,
        back,
        np.empty(row),
        np.empty(row),
        starts,
        ends,
    )
    if score == -np.inf:
        return None
    return Path(
        starts=starts,
        ends=ends,
        log_prob=float(score),
        band=band,
        touched_band_edge=bool(touched and band.frames is not None),
    )


def best_path(
    log_probs: npt.NDArray[np.float32],
    ids: IntArray,
    *,
    band_frames: int,
    max_table_bytes: int,
) -> Path:
    """The Viterbi path of `ids` on (T, V) log-probs; the caller has checked there are enough
    frames.

    band_frames > 0: that many frames either side of the uniform diagonal. 0 (automatic):
    start at AUTO_BAND_FRAMES (the whole lattice for audio that short) and double the band
    while the best path runs along its edge, the sign that the band cut off a better path
    (pauses, a changing pace). No band is ever wider than `max_table_bytes` allows, and one
    that holds no path at all is doubled until it does.
    """
    num_frames = log_probs.shape[0]
    num_states = 2 * ids.size + 1
    widest = _max_half_width(num_frames, num_states, max_table_bytes)

    def capped(half: int) -> int:
        return half if widest is None else min(half, widest)

    adaptive = band_frames <= 0
    frames = AUTO_BAND_FRAMES if adaptive else band_frames
    band = _band_for(
        num_frames,
        num_states,
        capped(max(_MIN_HALF_WIDTH, math.ceil(frames * num_states / num_frames) + 1)),
    )
    while True:
        path = _run(log_probs, ids, band)
        if band.half_width is None:
            if path is None:
                # The whole lattice always holds a path once there are enough frames.
                raise AssertionError("no CTC path on the full lattice despite enough frames")
            return path
        if path is not None and not (adaptive and path.touched_band_edge):
            return path
        if widest is not None and band.half_width >= widest:
            if path is not None:
                return path
            raise FailedPrecondition(
                f"no alignment stays within {band.frames} frames of the uniform diagonal, the "
                f"widest band the {max_table_bytes / 2**20:.1f} MiB table budget allows for "
                f"{num_frames} frames and {ids.size} phonemes: the recitation's pace is too "
                "uneven for its length, or the audio does not match the reference"
            )
        band = _band_for(num_frames, num_states, capped(2 * band.half_width))
