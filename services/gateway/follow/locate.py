"""Where in the target a segment's decode lies: following the reciter.

The decode of a segment is aligned (edit distance, phoneme by phoneme) against the target's
words from a window behind the current position (repeats, restarts) to a window ahead (skips).
The match must consume the whole decode, may start and end only at word boundaries, and pays a
small prior per word of distance from the position, so a phrase that occurs twice is placed
where the reciter most likely is. The isti'adha and basmala are candidate items before word 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Edits per word of distance from the expected position: enough to break ties between two
# occurrences of the same phrase, far too little to pull a match off the words it fits.
POSITION_PRIOR = 0.05
# Below this similarity the segment is not the target near the position: off-target.
ON_TARGET_SIMILARITY = 0.55


@dataclass(frozen=True)
class Item:
    """A candidate word of the match: a target word (index >= 0) or a prelude (`kind`)."""

    phonemes: str
    word: int = -1
    kind: str = "word"


@dataclass(frozen=True)
class MatchedItem:
    item: Item
    # Range of decoded phonemes that the item took (end exclusive; may be empty).
    decoded_start: int
    decoded_end: int


@dataclass(frozen=True)
class Match:
    items: tuple[MatchedItem, ...]
    similarity: float
    distance: int

    @property
    def words(self) -> tuple[MatchedItem, ...]:
        return tuple(m for m in self.items if m.item.kind == "word")

    @property
    def preludes(self) -> tuple[MatchedItem, ...]:
        return tuple(m for m in self.items if m.item.kind != "word")


def _boundaries(items: Sequence[Item]) -> npt.NDArray[np.int64]:
    lengths = np.array([len(i.phonemes) for i in items], dtype=np.int64)
    return np.concatenate(([0], np.cumsum(lengths)))


def locate(decoded: str, items: Sequence[Item], expected: int) -> Match | None:
    """The contiguous run of `items` that best explains `decoded`; `expected` is the item index
    where the reciter should be (the prior's centre). None when there is nothing to match."""
    if not decoded or not items:
        return None
    reference = "".join(i.phonemes for i in items)
    bounds = _boundaries(items)
    n, m = len(decoded), len(reference)
    if m == 0:
        return None
    at_boundary = np.full(m + 1, False)
    at_boundary[bounds] = True
    item_at = np.searchsorted(bounds, np.arange(m + 1), side="right") - 1  # item starting at/before j
    inf = 1e9
    # Row 0: the match may start at any word boundary, paying its distance from `expected`.
    start_cost = np.full(m + 1, inf)
    start_cost[bounds] = POSITION_PRIOR * np.abs(np.arange(len(bounds)) - expected)
    cost = np.empty((n + 1, m + 1))
    cost[0] = _horizontal(start_cost)
    ref = np.frombuffer(reference.encode("utf-32-le"), dtype=np.uint32)
    dec = np.frombuffer(decoded.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(m + 1, dtype=np.float64)
    for i in range(1, n + 1):
        diag = np.full(m + 1, inf)
        diag[1:] = cost[i - 1, :-1] + (ref != dec[i - 1])
        best = np.minimum(diag, cost[i - 1] + 1.0)  # substitution/match, or an extra decoded phoneme
        cost[i] = np.minimum.accumulate(best - idx) + idx  # skipping reference phonemes
    ends = np.flatnonzero(at_boundary)
    ends = ends[ends > 0]
    end = int(ends[np.argmin(cost[n, ends])])
    path = _traceback(cost, ref, dec, end, at_boundary, start_cost)
    start = path[0][1]
    first_item = int(item_at[start])
    last_item = int(item_at[end - 1])
    matched: list[MatchedItem] = []
    for k in range(first_item, last_item + 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        taken = [i for i, j in path if lo < j <= hi]
        d_start = min(taken) - 1 if taken else _decoded_at(path, lo)
        d_end = max(taken) if taken else d_start
        matched.append(MatchedItem(items[k], max(d_start, 0), max(d_end, 0)))
    span = end - start
    distance = max(round(cost[n, end] - start_cost[start]), 0)
    similarity = 1.0 - min(1.0, distance / max(n, span, 1))
    return Match(tuple(matched), similarity, distance)


def _horizontal(row: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    idx = np.arange(row.size, dtype=np.float64)
    return np.minimum.accumulate(row - idx) + idx


def _decoded_at(path: list[tuple[int, int]], j: int) -> int:
    for i, jj in path:
        if jj >= j:
            return i
    return path[-1][0]


def _traceback(
    cost: npt.NDArray[np.float64],
    ref: npt.NDArray[np.uint32],
    dec: npt.NDArray[np.uint32],
    end: int,
    at_boundary: npt.NDArray[np.bool_],
    start_cost: npt.NDArray[np.float64],
) -> list[tuple[int, int]]:
    """(decoded index, reference index) pairs from the start of the match to its end."""
    i, j = len(dec), end
    path = [(i, j)]
    while not (i == 0 and at_boundary[j] and abs(cost[0, j] - start_cost[j]) < 1e-9):
        if i > 0 and j > 0 and abs(cost[i, j] - (cost[i - 1, j - 1] + (ref[j - 1] != dec[i - 1]))) < 1e-9:
            i, j = i - 1, j - 1
        elif i > 0 and abs(cost[i, j] - (cost[i - 1, j] + 1.0)) < 1e-9:
            i -= 1
        elif j > 0 and abs(cost[i, j] - (cost[i, j - 1] + 1.0)) < 1e-9:
            j -= 1
        else:
            break
        path.append((i, j))
    path.reverse()
    return path
