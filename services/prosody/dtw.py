"""Dynamic time warping in numpy (no GPL dtw-python): anti-diagonal sweeps, so a 1500 x 1500
lattice takes ~3000 vectorised steps instead of two million Python ones.

Steps are the symmetric (1,0), (0,1), (1,1) moves; the path runs from (0, 0) to (n-1, m-1).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def accumulate(cost: FloatArray) -> FloatArray:
    """Accumulated cost D[i, j] = cost[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1]).

    An anti-diagonal of a row-major matrix is a strided slice of its flat view (stride: the row
    length minus one), so each sweep step works on views, not gathered copies."""
    n, m = cost.shape
    if m < 2:
        return np.cumsum(cost, axis=0) if m == 1 else np.zeros((n, 0))
    width = m + 1
    acc = np.full((n + 1) * width, np.inf)
    acc[0] = 0.0
    flat_cost = np.ascontiguousarray(cost, dtype=np.float64).ravel()
    for k in range(n + m - 1):
        i0, i1 = max(0, k - m + 1), min(n - 1, k)
        count = i1 - i0 + 1
        # (i+1, j+1) with j = k - i sits at i*m + width + k + 1; its three predecessors are
        # (i, j+1) one row up, (i+1, j) one column left and (i, j) diagonally.
        here = i0 * m + width + k + 1
        stop = here + m * count
        up = acc[here - width : stop - width : m]
        left = acc[here - 1 : stop - 1 : m]
        diag = acc[here - width - 1 : stop - width - 1 : m]
        c0 = i0 * (m - 1) + k
        acc[here:stop:m] = flat_cost[c0 : c0 + (m - 1) * count : m - 1] + np.minimum(np.minimum(up, left), diag)
    return acc.reshape(n + 1, width)[1:, 1:]


def backtrack(acc: FloatArray) -> npt.NDArray[np.int64]:
    """The optimal path as (k, 2) index pairs from (0, 0) to the end."""
    i, j = acc.shape[0] - 1, acc.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            moves = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            step = int(np.argmin(moves))
            if step == 0:
                i, j = i - 1, j - 1
            elif step == 1:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return np.asarray(path[::-1], dtype=np.int64)


def cost_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Euclidean distances between the frames of a (n, d) or (n,) and b (m, d) or (m,)."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    sq = (a2 * a2).sum(1)[:, None] + (b2 * b2).sum(1)[None, :] - 2 * a2 @ b2.T
    return np.sqrt(np.maximum(sq, 0.0))


def dtw(a: FloatArray, b: FloatArray) -> tuple[float, npt.NDArray[np.int64]]:
    """(mean cost along the optimal path, path). Raises ValueError on an empty sequence."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("DTW needs two non-empty sequences")
    cost = cost_matrix(a, b)
    acc = accumulate(cost)
    path = backtrack(acc)
    return float(cost[path[:, 0], path[:, 1]].mean()), path
