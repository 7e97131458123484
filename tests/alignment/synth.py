"""Posteriorgrams built to a known truth: each token's frames, blanks around and between."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.alignment.vocabulary import default_vocabulary

VOCAB = default_vocabulary()
V = len(VOCAB)


@dataclass(frozen=True)
class Truth:
    log_probs: npt.NDArray[np.float32]
    ids: npt.NDArray[np.int64]
    phonemes: str
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]


def random_ids(rng: np.random.Generator, length: int, repeat_p: float = 0.3) -> npt.NDArray[np.int64]:
    """Random phoneme ids where a share of neighbours repeat (madd runs, shadda)."""
    ids = rng.integers(1, V, size=length)
    repeat = rng.random(length) < repeat_p
    for k in range(1, length):
        if repeat[k]:
            ids[k] = ids[k - 1]
    return ids.astype(np.int64)


def log_softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).astype(np.float32)


def frame_labels(
    rng: np.random.Generator,
    ids: npt.NDArray[np.int64],
    *,
    durations: tuple[int, int] = (1, 6),
    gaps: tuple[int, int] = (0, 3),
    edges: tuple[int, int] = (0, 6),
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The true label of every frame, and each token's [start, end)."""
    labels: list[int] = [0] * int(rng.integers(edges[0], edges[1] + 1))
    starts = np.zeros(ids.size, dtype=np.int64)
    ends = np.zeros(ids.size, dtype=np.int64)
    for k, token in enumerate(ids.tolist()):
        if k > 0:
            gap = int(rng.integers(gaps[0], gaps[1] + 1))
            if token == ids[k - 1]:
                gap = max(gap, 1)
            labels.extend([0] * gap)
        starts[k] = len(labels)
        labels.extend([token] * int(rng.integers(durations[0], durations[1] + 1)))
        ends[k] = len(labels)
    labels.extend([0] * int(rng.integers(edges[0], edges[1] + 1)))
    return np.array(labels, dtype=np.int64), starts, ends


def posteriorgram(
    rng: np.random.Generator, labels: npt.NDArray[np.int64], *, margin: float = 6.0, noise: float = 1.0
) -> npt.NDArray[np.float32]:
    """Log-probs where the true label of each frame stands `margin` above Gaussian noise."""
    logits = rng.normal(0.0, noise, size=(labels.size, V))
    logits[np.arange(labels.size), labels] += margin
    return log_softmax(logits)


def build(rng: np.random.Generator, ids: npt.NDArray[np.int64], **kwargs: tuple[int, int]) -> Truth:
    labels, starts, ends = frame_labels(rng, ids, **kwargs)
    return Truth(
        log_probs=posteriorgram(rng, labels),
        ids=ids,
        phonemes="".join(VOCAB[i] for i in ids.tolist()),
        starts=starts,
        ends=ends,
    )


def with_pause(
    labels: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    before_token: int,
    frames: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The same recitation with a silence of `frames` blank frames before a token (a breath)."""
    at = int(starts[before_token])
    shift = np.where(np.arange(starts.size) >= before_token, frames, 0)
    return np.insert(labels, at, np.zeros(frames, dtype=np.int64)), starts + shift, ends + shift
