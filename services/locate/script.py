"""The phonetic script as arrays: phoneme <-> model vocabulary id (1..42) for whole strings.

The whole Quran is 652k phonemes; a per-character dict lookup in Python costs ~0.1 s for it, a
table indexed by code point a few milliseconds. Every phoneme is one code point of the Arabic
blocks, so the table is small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from services.gateway.reference.builder import phoneme_vocabulary

VOCABULARY = phoneme_vocabulary()
Ids = npt.NDArray[np.int64]

_CODEPOINTS = np.array([ord(symbol) for symbol in VOCABULARY], dtype=np.uint32)
_ID_OF = np.zeros(int(_CODEPOINTS.max()) + 1, dtype=np.int64)
_ID_OF[_CODEPOINTS] = np.fromiter(VOCABULARY.values(), dtype=np.int64)
# id -> code point; id 0 (the CTC blank) has none.
_CODEPOINT_OF = np.zeros(max(VOCABULARY.values()) + 1, dtype=np.uint32)
_CODEPOINT_OF[list(VOCABULARY.values())] = _CODEPOINTS


def to_ids(text: str) -> Ids:
    """The vocabulary ids of the phonemes in `text`; anything else (spaces, other letters) is
    dropped."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    ids = _ID_OF[np.minimum(points, len(_ID_OF) - 1)]
    ids[points >= len(_ID_OF)] = 0
    return ids[ids > 0]


def from_ids(ids: npt.NDArray[np.integer] | Sequence[int]) -> str:
    """The phoneme string of vocabulary ids (ValueError on an id outside 1..42)."""
    values = np.asarray(ids, dtype=np.int64)
    if len(values) and (values.min() < 1 or values.max() >= len(_CODEPOINT_OF)):
        raise ValueError("phoneme ids outside the vocabulary")
    return _CODEPOINT_OF[values].tobytes().decode("utf-32-le")


def run_starts(ids: Ids) -> npt.NDArray[np.bool_]:
    """True where an id differs from the one before it: the symbols a collapse of repeated
    symbols keeps."""
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return keep
