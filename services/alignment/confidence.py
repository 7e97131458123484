"""Goodness of pronunciation per aligned token, from the frames the path gave it.

LLR: over a token's frames, the mean of log p(target) - log p(c), where c is the single
non-blank label other than the target with the highest total log-probability over those
frames (the best competing hypothesis for the whole segment, and the label reported as the
competitor). Negative: the model found the competitor likelier. Posterior GOP: the mean
posterior of the target over the same frames, in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.alignment.vocabulary import BLANK_ID

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TokenScores:
    mean_log_prob: FloatArray
    llr: FloatArray
    gop_posterior: FloatArray
    competitor: npt.NDArray[np.int64]


def segment_sums(
    log_probs: npt.NDArray[np.float32], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> FloatArray:
    """(L, V) sums of log-probs over each token's frames, without a (T, V) float64 copy."""
    # reduceat sums [idx[i], idx[i+1]); interleaving starts and ends makes the even rows the
    # tokens and the odd rows the gaps between them.
    bounds = np.empty(2 * starts.size, dtype=np.int64)
    bounds[0::2] = starts
    bounds[1::2] = ends
    if bounds[-1] == log_probs.shape[0]:
        bounds = bounds[:-1]
    sums: FloatArray = np.add.reduceat(log_probs, bounds, axis=0, dtype=np.float64)
    return sums[0::2]


def score_tokens(
    log_probs: npt.NDArray[np.float32],
    ids: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
) -> TokenScores:
    counts = ends - starts
    lengths = counts.astype(np.float64)
    rows = np.arange(ids.size)
    sums = segment_sums(log_probs, starts, ends)
    target = sums[rows, ids]
    sums[:, BLANK_ID] = -np.inf
    sums[rows, ids] = -np.inf
    competitor = sums.argmax(axis=1)
    llr = (target - sums[rows, competitor]) / lengths

    # Every frame on a token, flattened, with the token it belongs to.
    owner = np.repeat(rows, counts)
    frames = np.arange(owner.size) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
    posterior = np.exp(log_probs[frames, ids[owner]].astype(np.float64))
    gop = np.bincount(owner, weights=posterior, minlength=ids.size) / lengths
    return TokenScores(
        mean_log_prob=target / lengths,
        llr=llr,
        gop_posterior=gop,
        competitor=competitor.astype(np.int64),
    )
