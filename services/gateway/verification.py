"""Content verification: was the expected passage recited at all, and if not, which one was?

The check compares the decoded phoneme string with the reference phoneme string by normalised
Levenshtein similarity (1 - edits / length of the longer string, rapidfuzz). Measured on 300
random ayahs with default attributes: an ayah against an unrelated one scores 0.20 median, 0.38
at the 99th percentile (the closest of ~300 similar-length ayahs: 0.38 median, 0.60 at the 95th
percentile, near-duplicate ayahs aside); the same ayah with 10 % of its phonemes edited at
random scores >= 0.86, with 30 % >= 0.70, with 40 % >= 0.60. The default threshold of 0.6
therefore passes any recitation of the right text a learner could produce (the model's phoneme
error rate on learners is about 6 %) and catches another passage or a non-recitation.

On a mismatch, quran-transcript's PhoneticSearch (its bundled index of the whole Quran, loaded
once, lazily, in the calling worker thread) locates what was recited. Its fuzzy search
(fuzzysearch, Levenshtein) costs grow steeply with the query length and the error budget
(2:282 as a query: 0.8 s at 10 % errors, 18 s at 20 %), so only the first
`search_groups` phoneme groups of the decode (about 8 words) are searched, with an error
budget raised from 10 % to 30 % only while nothing is found (~200 ms at worst for 40 groups).
Each hit is then extended by the rest of the decode's length and scored on the whole decode,
in the search's normalised script (the first phoneme of each group), so a passage's
similarity says how well the whole recitation fits a continuous reading from that point. The
gateway asks the passage index of locate targets instead whenever it holds the whole Quran's
(services/gateway/likely.py: milliseconds, and right more often on noisy decodes).

A learner who drops a word still recites the passage: a short ayah with one of its three words
left out scores 0.6 or less on the plain similarity, and a mismatch then hides every word's
verdict behind "not assessed". So when the plain similarity falls short, the same alignment is
scored again with each run of at least DROP_MIN_PHONEMES reference phonemes that was not heard
at all, between stretches that were, counted as words not recited instead of edits (the letter
check then reports them on their words), as long as what was heard covers at least
KEPT_MIN_SHARE of the passage. Another passage does not pass this way: its phonemes do not
line up with the reference's, so most of its edits are substitutions and insertions, which are
still counted.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from quran_transcript import PhoneticSearch, chunck_phonemes
from quran_transcript.phonetics.search import (
    NoPhonemesSearchResult,
    PhonemesSearchSpan,
    normalize_phonetic_groups,
)
from rapidfuzz.distance import Levenshtein

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.reference import quran
from services.gateway.reference.settings import ContentSearchConfig

DEFAULT_THRESHOLD = 0.6
# A run of unheard reference phonemes this long (a short word) is a dropped word, not edits.
DROP_MIN_PHONEMES = 4
# What was heard must cover this share of the passage for a drop to be forgiven.
KEPT_MIN_SHARE = 0.3
ERROR_RATIOS = (0.1, 0.2, 0.3)

# Columns of PhoneticSearch.index, one row per phoneme group of the whole Quran.
_SURAH, _AYAH, _WORD, _PH_START, _PH_END = 0, 1, 2, 5, 6


class ContentStatus(enum.Enum):
    MATCH = gateway_pb2.CONTENT_STATUS_MATCH
    MISMATCH = gateway_pb2.CONTENT_STATUS_MISMATCH
    # No decode to compare.
    UNKNOWN = gateway_pb2.CONTENT_STATUS_UNKNOWN


@dataclass(frozen=True)
class RecognizedPassage:
    surah: int
    ayah: int
    # 0-based Uthmani word indexes; end_word is exclusive and counts in (end_surah, end_ayah).
    start_word: int
    end_surah: int
    end_ayah: int
    end_word: int
    uthmani: str
    similarity: float

    def to_proto(self) -> gateway_pb2.RecognizedPassage:
        return gateway_pb2.RecognizedPassage(
            surah=self.surah,
            ayah=self.ayah,
            start_word=self.start_word,
            end_surah=self.end_surah,
            end_ayah=self.end_ayah,
            end_word=self.end_word,
            uthmani=self.uthmani,
            similarity=self.similarity,
        )


@dataclass(frozen=True)
class ContentResult:
    status: ContentStatus
    similarity: float
    threshold: float
    likely_recited: tuple[RecognizedPassage, ...] = ()

    def to_proto(self) -> gateway_pb2.ContentCheck:
        return gateway_pb2.ContentCheck(
            status=self.status.value,
            similarity=self.similarity,
            threshold=self.threshold,
            likely_recited=[passage.to_proto() for passage in self.likely_recited],
        )


def similarity(decoded: str, reference: str) -> float:
    """Normalised Levenshtein similarity in [0, 1] (1: identical)."""
    return float(Levenshtein.normalized_similarity(decoded, reference))


def similarity_with_drops(decoded: str, reference: str) -> float:
    """The similarity of what was heard to the passage, with whole unheard runs of the reference
    (dropped words) not counted as edits; 0 when what was heard covers too little of it."""
    if not decoded or not reference:
        return 0.0
    edits = 0
    dropped = 0
    ops = Levenshtein.opcodes(reference, decoded)
    for k, op in enumerate(ops):
        tag, i1, i2, j1, j2 = op.tag, op.src_start, op.src_end, op.dest_start, op.dest_end
        if tag == "equal":
            continue
        # A word left out sits between stretches that were heard right; one said in its place
        # (an insertion or substitution beside the gap) is another word, not a drop.
        between_equal = all(ops[n].tag == "equal" for n in (k - 1, k + 1) if 0 <= n < len(ops))
        if tag == "delete" and i2 - i1 >= DROP_MIN_PHONEMES and between_equal:
            dropped += i2 - i1
            continue
        edits += max(i2 - i1, j2 - j1)
    kept = len(reference) - dropped
    if kept < KEPT_MIN_SHARE * len(reference):
        return 0.0
    return max(0.0, 1.0 - edits / max(len(decoded), kept))


class PassageFinder:
    """Locates a decoded phoneme string in the whole Quran."""

    def __init__(
        self,
        search_groups: int = 40,
        max_results: int = 5,
        error_ratios: Sequence[float] = ERROR_RATIOS,
    ) -> None:
        self.search_groups = search_groups
        self.max_results = max_results
        self.error_ratios = tuple(error_ratios)
        self._lock = threading.Lock()
        self._search: PhoneticSearch | None = None
        self._ayah_rows: dict[tuple[int, int], tuple[int, int]] = {}

    @classmethod
    def from_config(cls, config: ContentSearchConfig) -> PassageFinder:
        return cls(search_groups=config.search_groups, max_results=config.max_results)

    def load(self) -> PhoneticSearch:
        """Loads the index once (~0.2 s); blocking, so call it from a worker thread."""
        with self._lock:
            if self._search is None:
                search = PhoneticSearch()
                keys = search.index[:, _SURAH].astype(np.int64) * 1000 + search.index[:, _AYAH]
                starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
                ends = np.append(starts[1:], len(keys))
                self._ayah_rows = {
                    (int(search.index[s, _SURAH]), int(search.index[s, _AYAH])): (int(s), int(e))
                    for s, e in zip(starts, ends, strict=True)
                }
                self._search = search
            return self._search

    def find(self, decoded: str) -> list[RecognizedPassage]:
        """Passages that the decode most likely is, best first; empty when nothing is close."""
        groups = chunck_phonemes(decoded)
        if not groups:
            return []
        search = self.load()
        window = groups[: self.search_groups]
        hits = []
        for ratio in self.error_ratios:
            try:
                hits = search.search("".join(window), error_ratio=ratio)
            except NoPhonemesSearchResult:
                continue
            break
        normalised = normalize_phonetic_groups(groups)
        beyond_window = len(groups) - len(window)
        last_row = len(search.index) - 1
        passages: dict[tuple[int, int, int], RecognizedPassage] = {}
        for hit in hits:
            start_row = self._row(hit.start, _PH_START)
            # Where the passage ends: past the hit by the rest of the decode, or at the decode's
            # length from the start. Edits in the decode (and ayahs read on without a stop, which
            # the per-ayah index phonetizes with one) move the true end, so every end near those
            # two is scored (a bit-parallel Levenshtein: microseconds each).
            by_hit = self._row(hit.end, _PH_END) + beyond_window
            by_length = start_row + len(normalised) - 1
            slack = max(3, len(normalised) // 10)
            candidates = range(
                max(start_row, min(by_hit, by_length) - slack), min(last_row, max(by_hit, by_length) + slack) + 1
            )
            end_row = max(candidates, key=lambda end: similarity(normalised, search.ref_ph_norm[start_row : end + 1]))
            passage = self._passage(
                search.index, start_row, end_row, normalised, search.ref_ph_norm[start_row : end_row + 1]
            )
            place = (passage.surah, passage.ayah, passage.start_word)
            if place not in passages or passages[place].similarity < passage.similarity:
                passages[place] = passage
        ranked = sorted(passages.values(), key=lambda p: (-p.similarity, p.surah, p.ayah, p.start_word))
        return ranked[: self.max_results]

    def _row(self, span: PhonemesSearchSpan, column: int) -> int:
        """The index row (global phoneme-group position) of a search span."""
        first, last = self._ayah_rows[(span.sura_idx, span.aya_idx)]
        assert self._search is not None
        offsets = self._search.index[first:last, column]
        return first + min(int(np.searchsorted(offsets, span.phonemes_idx)), last - first - 1)

    @staticmethod
    def _passage(
        index: npt.NDArray[np.uint16], start_row: int, end_row: int, decoded_norm: str, passage_norm: str
    ) -> RecognizedPassage:
        surah, ayah, word = (int(v) for v in index[start_row, [_SURAH, _AYAH, _WORD]])
        end_surah, end_ayah, end_word = (int(v) for v in index[end_row, [_SURAH, _AYAH, _WORD]])
        return RecognizedPassage(
            surah=surah,
            ayah=ayah,
            start_word=word,
            end_surah=end_surah,
            end_ayah=end_ayah,
            end_word=end_word + 1,
            uthmani=quran.uthmani_between((surah, ayah, word), (end_surah, end_ayah, end_word)),
            similarity=similarity(decoded_norm, passage_norm),
        )


class Finder(Protocol):
    """What was recited instead (PassageFinder, or likely.LikelyRecited over the locate index).
    Blocking: called from worker threads."""

    def find(self, decoded: str) -> list[RecognizedPassage]: ...

    def load(self) -> object: ...


class ContentVerifier:
    """Decoded against expected phonemes; on a mismatch, what was recited instead."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, finder: Finder | None = None) -> None:
        self.threshold = _checked_threshold(threshold)
        self.finder: Finder = (
            finder if finder is not None else PassageFinder.from_config(ContentSearchConfig.from_env())
        )

    def verify(self, decoded: str | None, reference_phonemes: str, threshold: float | None = None) -> ContentResult:
        """CPU-bound (the search on a mismatch): call it from a worker thread."""
        limit = self.threshold if threshold is None else _checked_threshold(threshold)
        if decoded is None:
            return ContentResult(ContentStatus.UNKNOWN, similarity=0.0, threshold=limit)
        score = similarity(decoded, reference_phonemes)
        if score >= limit:
            return ContentResult(ContentStatus.MATCH, similarity=score, threshold=limit)
        forgiven = similarity_with_drops(decoded, reference_phonemes)
        if forgiven >= limit:
            # The passage with words left out: a match, the missing words reported on themselves.
            return ContentResult(ContentStatus.MATCH, similarity=forgiven, threshold=limit)
        return ContentResult(
            ContentStatus.MISMATCH, similarity=score, threshold=limit, likely_recited=tuple(self.finder.find(decoded))
        )

    def check(
        self, decoded: str | None, reference: common_pb2.Reference, threshold: float | None = None
    ) -> gateway_pb2.ContentCheck:
        """`verify` on a Reference, as gateway.proto's ContentCheck."""
        return self.verify(decoded, reference.phonemes, threshold).to_proto()


def _checked_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise InvalidArgument(f"content_threshold must be within 0..1, got {threshold}")
    return float(threshold)
