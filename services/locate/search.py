"""Where in the index a decoded phoneme string was recited: n-gram votes, then a fuzzy re-rank.

The search works in a *collapsed* script: every run of one repeated symbol becomes one symbol,
in the index and in the query alike. Madd, ghunnah and shadda are written as repeated symbols,
and their counts are what a model (and a learner) gets wrong most while saying the right words;
collapsing makes `ااااا` and `اا` the same place, and costs little in telling passages apart
(passages that differ only in those counts are, for locating, the same words).

1. Candidates: every 4-gram of the collapsed query looks up where it occurs (an inverted index:
   the index's 4-gram keys sorted once, postings found by bisection). Each hit votes for the
   diagonal it implies (index position minus query position: where the query would start),
   in bins of 8 phonemes; a query gram votes at most once per bin, so a repetitive stretch does
   not outvote a real match. Bins with at least half the best bin's votes (at least 8, at most
   256) become candidate windows; neighbouring bins merge into one window.
2. Placement: rapidfuzz's `partial_ratio_alignment` places the query in each window. Windows
   placed more than 10 points (of 100) behind the best are dropped, unless among the 8 best
   placed: identical passages place equally well, so no tie is lost, and the runners-up stay.
3. Scoring: the placement's start and end are snapped to word bounds (every bound within a sixth
   of the query's length of them, and where the query's length puts the end), and each span is
   scored by normalised Levenshtein similarity between the query and the span's own collapsed
   phonemes (1 - edits / longer length). Scoring the word-aligned span, not the raw placement,
   gives identical passages identical scores: that is what makes ties reportable. A span is
   also scored as read from a stop and to one, as a recitation reads its first and last words
   (a hamzat al-wasl pronounced, a final vowel dropped; see _Scorer).
4. Spans that overlap a better one by more than half are dropped; what is left is ranked by
   score, then by how little the reading had to be adjusted to a stop, then mushaf order.
   `tied` are the spans with the best score (identical text: the Ar-Rahman refrain, the basmala
   at 1:1 and inside 27:30; or text that reads the same when stopped on), `margin` is the best
   score minus the best score outside the tie.

A decode longer than HEAD (64 collapsed phonemes, about ten words) is placed by its head, and
the best starts found are then scored on the whole decode, the end where its length puts it.
A decode that opens with the isti'adha or the basmala (prelude.py) is also located without
them; the reading that places the passage clearly better wins.

Noise: 10 % of a 4-word query's phonemes edited at random leaves about two thirds of its
4-grams intact, enough votes for the true diagonal to stand out among the ~500k positions
(bench/locate.py measures how often it does).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from services.locate import prelude as prelude_mod
from services.locate import script
from services.locate.index import PassageIndex, WordPlace

GRAM = 4
BIN = 8
# Bits per symbol in a gram key: the vocabulary has 42 symbols (ids 1..42).
_BITS = 6
# A decode is placed by its first HEAD collapsed phonemes (about ten words: more than enough to
# tell passages apart, and the re-rank's cost stays that of a short query); each place is then
# scored on the whole decode, up to MAX_QUERY collapsed phonemes (a few minutes of recitation;
# what follows is ignored).
HEAD = 64
MAX_QUERY = 1500
_TIE = 1e-9
# Candidate bins: those with at least half the best bin's votes, no fewer than MIN_WINDOWS
# (the runners-up the margin is measured against) and no more than MAX_WINDOWS (a short query
# of common words: the tie list is cut there).
MIN_WINDOWS = 8
MAX_WINDOWS = 256
# Partial-ratio points (0..100) behind the best alignment within which a window is still scored.
SNAP_BAND = 10.0
# Head-score points (0..1) behind the best head within which a start is scored on a long decode.
EXTEND_BAND = 0.1
# How much better the passage must place without an opening isti'adha or basmala for the search
# to set them aside (Al-Fatiha read from its basmala places as well either way, and keeps 1:1).
PRELUDE_GAIN = 0.05

I64 = npt.NDArray[np.int64]
# (score, first word, end word, adjustments): a span before it is worth building. Adjustments:
# symbols added or dropped to read the span as from or to a stop (see _Scorer); among equal
# scores, fewer rank first (reciters start and stop at ayah bounds more often than inside).
_Found = tuple[float, int, int, int]


@dataclass(frozen=True)
class Span:
    """A located passage: words first_word..end_word-1 (global word indexes of the index)."""

    first_word: int
    end_word: int
    start: WordPlace
    # The last word of the span (included).
    last: WordPlace
    # Normalised Levenshtein similarity of the query and the span, in the collapsed script: 0..1.
    score: float
    # Offsets into the index's phonemes (uncollapsed).
    phoneme_start: int
    phoneme_end: int


@dataclass(frozen=True)
class LocateResult:
    # Ranked, best first; every tied span is in it even when that passes `limit`.
    candidates: tuple[Span, ...]
    # The spans that share the best score (identical text): the search cannot tell them apart.
    tied: tuple[Span, ...]
    # The best score minus the best score outside the tie (the best score when nothing else
    # was found): how far the runner-up is behind.
    margin: float
    # The collapsed query that was located (after dropping symbols outside the vocabulary,
    # cutting to MAX_QUERY, and setting aside the prelude).
    query: str
    # What the decode opened with before the passage: ("isti'adha",), ("basmala",), both, or
    # nothing; and how many of the decode's phonemes that took (counting only symbols of the
    # phoneme vocabulary: spaces and the like are not counted).
    prelude: tuple[str, ...] = ()
    prelude_phonemes: int = 0

    @property
    def best(self) -> Span | None:
        return self.candidates[0] if self.candidates else None

    @property
    def ambiguous(self) -> bool:
        return len(self.tied) > 1


def _gram_keys(codes: npt.NDArray[np.int64], gram: int) -> I64:
    count = len(codes) - gram + 1
    keys = np.zeros(max(count, 0), dtype=np.int64)
    for i in range(gram):
        keys = (keys << _BITS) | codes[i : i + count]
    return keys


class PassageSearch:
    """The inverted n-gram index over one PassageIndex (built in ~0.1 s; search is read-only and
    thread-safe)."""

    def __init__(self, index: PassageIndex, *, gram: int = GRAM) -> None:
        self.index = index
        self.gram = gram
        codes = script.to_ids(index.phonemes)
        if len(codes) != len(index.phonemes):
            raise ValueError("the index holds symbols outside the phoneme vocabulary")
        keep = script.run_starts(codes)
        self._codes = codes[keep]
        self._text = script.from_ids(self._codes)
        # kept_before[r]: collapsed symbols in raw phonemes [0, r).
        kept_before = np.concatenate(([0], np.cumsum(keep))).astype(np.int64)
        # A word starts at the collapsed symbol that covers its first phoneme (a run shared with
        # the word before, as in an idgham, belongs to both) and ends after its last phoneme's.
        raw_start = index.word_start.astype(np.int64)
        self._cstart = np.where(
            raw_start < len(codes), kept_before[np.minimum(raw_start + 1, len(codes))] - 1, len(self._codes)
        )
        self._cend = np.maximum(kept_before[index.word_end.astype(np.int64)], self._cstart)
        # Lists, not arrays: the re-rank reads them one element at a time.
        self._cstart_list: list[int] = self._cstart.tolist()
        self._cend_list: list[int] = self._cend.tolist()
        self._wasl: list[bool] = index.word_wasl.tolist()
        self._preludes = prelude_mod.preludes(index.moshaf)
        keys = _gram_keys(self._codes, gram)
        self._order = np.argsort(keys, kind="stable").astype(np.int32)
        self._sorted_keys = keys[self._order]

    def span_text(self, first_word: int, end_word: int) -> str:
        """Words first_word..end_word-1 in the search's collapsed script: two spans with the same
        span_text are the same words, up to the lengths of held sounds."""
        return self._text[self._cstart_list[first_word] : self._cend_list[end_word - 1]]

    def search(self, decoded: str, *, limit: int = 10) -> LocateResult:
        """Ranked spans for a decoded phoneme string (spaces and symbols outside the phoneme
        vocabulary are ignored). Empty when the query has fewer than `gram` collapsed phonemes
        or nothing in the index shares a gram with it. A decode that opens with the isti'adha
        or the basmala is also located without them, and that reading wins when it places the
        rest better by PRELUDE_GAIN (then `prelude` names what was set aside)."""
        codes = script.to_ids(decoded)
        kept = script.run_starts(codes)
        query_codes = codes[kept][:MAX_QUERY]
        query = script.from_ids(query_codes)
        whole = self._locate(query_codes, query, limit)
        names, cut = prelude_mod.strip(query, self._preludes)
        if not names or len(query_codes) - cut < self.gram:
            return whole
        rest = self._locate(query_codes[cut:], query[cut:], limit)
        if rest.best is None or (whole.best is not None and rest.best.score < whole.best.score + PRELUDE_GAIN):
            return whole
        return replace(rest, prelude=names, prelude_phonemes=int(np.flatnonzero(kept)[cut]))

    def prelude_only(self, decoded: str) -> bool:
        """Whether a decode holds nothing but an opening isti'adha or basmala, the last perhaps
        not finished (prelude.only_preludes): whatever it matches (the basmala at 1:1 and 27:30,
        أَعُوذُ بِ at 113:1), no passage has been recited yet."""
        codes = script.to_ids(decoded)
        query = script.from_ids(codes[script.run_starts(codes)][:MAX_QUERY])
        return prelude_mod.only_preludes(query, self._preludes, self.gram)

    def _locate(self, query_codes: I64, query: str, limit: int) -> LocateResult:
        if len(query_codes) < self.gram:
            return LocateResult((), (), 0.0, query)
        scorer = _Scorer(query)
        # A long decode is placed by its head; each place found is then scored on the whole.
        head = _Scorer(query[:HEAD], ends_with_stop=False) if len(query) > HEAD else scorer
        aligned = [self._align(head.query, start, end) for start, end in self._windows(query_codes[:HEAD])]
        found = [self._best_span(head, at, until) for at, until in _worth_snapping(aligned)]
        if head is not scorer:
            found = [self._extend(scorer, first) for first in _worth_extending(found)]
        ranked = _suppress_overlaps(sorted(set(found), key=lambda f: (-f[0], f[3], f[1])))
        if not ranked:
            return LocateResult((), (), 0.0, query)
        best = ranked[0][0]
        tie_count = sum(1 for f in ranked if f[0] >= best - _TIE)
        runner_up = ranked[tie_count][0] if tie_count < len(ranked) else 0.0
        shown = tuple(self._span(*f[:3]) for f in ranked[: max(limit, tie_count)])
        return LocateResult(shown, shown[:tie_count], best - runner_up, query)

    def _windows(self, query_codes: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
        """Collapsed-index windows [start, end) where the query may lie, most votes first."""
        keys = _gram_keys(query_codes, self.gram)
        lo = np.searchsorted(self._sorted_keys, keys, side="left")
        hi = np.searchsorted(self._sorted_keys, keys, side="right")
        counts = hi - lo
        if not counts.any():
            return []
        postings = np.concatenate([self._order[a:b] for a, b in zip(lo, hi, strict=True) if b > a]).astype(np.int64)
        gram_at = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
        # Where the query would start; a bin per BIN phonemes (indels move the diagonal a little).
        bins = (postings - gram_at) // BIN
        # One vote per (bin, query gram); bins shifted to stay positive (a diagonal is at least
        # minus the query's length).
        shift = len(query_codes) // BIN + 1
        shifted = bins + shift
        pairs = np.sort(shifted * len(keys) + gram_at)
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
        votes = pairs // len(keys)
        # votes is sorted: each bin's tally is the length of its run.
        run_starts = np.flatnonzero(np.concatenate(([True], votes[1:] != votes[:-1])))
        voted = votes[run_starts]
        tally = np.diff(np.append(run_starts, len(votes)))
        floor = max(1, int(tally.max()) // 2)
        order = np.argsort(-tally, kind="stable")
        chosen = order[: max(MIN_WINDOWS, int(np.count_nonzero(tally >= floor)))][:MAX_WINDOWS]
        picked = np.sort(voted[chosen]) - shift
        windows: list[tuple[int, int]] = []
        pad = max(4, len(query_codes) // 5)
        for b in picked.tolist():
            start = b * BIN - pad
            end = (b + 1) * BIN + len(query_codes) + pad
            if windows and start <= windows[-1][1] - len(query_codes):
                # The neighbouring bin: one window for both.
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        size = len(self._codes)
        return [(max(0, a), min(size, b)) for a, b in windows if b > 0 and a < size]

    def _align(self, query: str, start: int, end: int) -> tuple[float, int, int]:
        """(partial ratio 0..100, start, end) of the query's best placement in a window."""
        window = self._text[start:end]
        if len(window) < len(query):
            return 0.0, start, end
        aligned = fuzz.partial_ratio_alignment(query, window)
        if aligned is None:  # only with a score_cutoff, which is not given
            return 0.0, start, end
        return aligned.score, start + aligned.dest_start, start + aligned.dest_end

    def _best_span(self, scorer: _Scorer, at: int, until: int) -> _Found:
        """The best-scoring word-aligned span near an alignment [at, until)."""
        query = scorer.query
        starts, ends = self._cstart_list, self._cend_list
        words = len(starts)
        # Noise moves the alignment's ends by a few symbols either way (an inserted symbol is as
        # likely to land in the window before the passage as after it): every word bound within
        # `slack` of them is tried, and the nearest bound on each side.
        slack = max(4, len(query) // 6)
        first = bisect.bisect_right(starts, at) - 1
        lowest = min(max(0, first), bisect.bisect_left(starts, at - slack))
        highest = max(first + 1, bisect.bisect_right(starts, at + slack))
        best_rank: tuple[float, int, int, int] | None = None
        best_words = (max(0, first), max(0, first))
        for w0 in range(max(0, lowest), min(words, highest + 1)):
            # The span's end: where the query's length says it is, and where the alignment does.
            for w1 in self._ends(w0, starts[w0] + len(query), until, slack):
                score, adjusted = scorer.score(self._text[starts[w0] : ends[w1]], self._wasl[w0])
                # Equal scores: the reading with fewer adjustments, the start nearest the
                # alignment, then the shorter span.
                rank = (score, -adjusted, -abs(starts[w0] - at), w0 - w1)
                if best_rank is None or rank > best_rank:
                    best_rank, best_words = rank, (w0, w1)
        assert best_rank is not None
        return best_rank[0], best_words[0], best_words[1] + 1, -best_rank[1]

    def _extend(self, scorer: _Scorer, first_word: int) -> _Found:
        """The span from first_word whose end scores best against the whole query: ends within
        a tenth of the query's length of where its length puts them."""
        starts, ends = self._cstart_list, self._cend_list
        length = len(scorer.query)
        best: _Found | None = None
        for last in self._ends(first_word, starts[first_word] + length, max(4, length // 10)):
            score, adjusted = scorer.score(self._text[starts[first_word] : ends[last]], self._wasl[first_word])
            if best is None or (score, -adjusted) > (best[0], -best[3]):
                best = (score, first_word, last + 1, adjusted)
        assert best is not None
        return best

    def _ends(self, first_word: int, *targets_and_slack: int) -> list[int]:
        """The last words to try for a span from first_word: every word ending within `slack`
        of a target, and the nearest word on each side of each target."""
        *targets, slack = targets_and_slack
        ends = self._cend_list
        low, high = min(targets) - slack, max(targets) + slack
        chosen: list[int] = []
        w = first_word
        while w < len(ends) - 1 and ends[w] < low:
            w += 1
        if w > first_word:
            chosen.append(w - 1)
        while w < len(ends) and ends[w] <= high:
            chosen.append(w)
            w += 1
        if w < len(ends):
            chosen.append(w)
        return chosen

    def _span(self, score: float, first_word: int, end_word: int) -> Span:
        index = self.index
        return Span(
            first_word=first_word,
            end_word=end_word,
            start=index.place(first_word),
            last=index.place(end_word - 1),
            score=score,
            phoneme_start=int(index.word_start[first_word]),
            phoneme_end=int(index.word_end[end_word - 1]),
        )


_HAMZA = "ء"
_WASL_OPENINGS = tuple(_HAMZA + vowel for vowel in "َُِ")
# Short vowels and the silah madd (waw, yaa) that a stop drops from a word's end.
_LOST_AT_A_STOP = frozenset("َُِۥۦ")


class _Scorer:
    """The similarity of one query to span texts, remembered per text (identical passages, the
    reason ties exist, come back many times in one search).

    The index reads every word as connected to the next (but the last of each ayah); a
    recitation reads its first and last words as from and to a stop, so a span is also scored as
    they would be read:
    - a span that starts on a word with hamzat al-wasl (ٱلْ..., ٱللَّه, ٱقْرَأْ) opens with a
      hamza and a short vowel that the connected reading drops (the word before carries on into
      the word's first letter): it is also scored with each of the three openings;
    - a decode ends on a stop (it is what the model heard last), where the last word loses its
      final vowel and the silah after it (لَهُۥ -> لَه): a span is also scored without up to two
      such final symbols. Not for the head of a long decode, which stops nowhere.
    The best reading counts.
    """

    def __init__(self, query: str, *, ends_with_stop: bool = True) -> None:
        self.query = query
        self.ends_with_stop = ends_with_stop
        self._scores: dict[tuple[str, bool], tuple[float, int]] = {}

    def score(self, text: str, opens_with_wasl: bool) -> tuple[float, int]:
        """(similarity, adjustments) of the best reading of a span text: the highest similarity,
        and of equal ones the reading with the fewest symbols added or dropped."""
        key = (text, opens_with_wasl)
        known = self._scores.get(key)
        if known is not None:
            return known
        openings = ("", *_WASL_OPENINGS) if opens_with_wasl and not text.startswith(_HAMZA) else ("",)
        endings = [text]
        if self.ends_with_stop:
            while len(endings) < 3 and endings[-1] and endings[-1][-1] in _LOST_AT_A_STOP:
                endings.append(endings[-1][:-1])
        best = (-1.0, 0)
        for dropped, ending in enumerate(endings):
            for opening in openings:
                similarity = float(Levenshtein.normalized_similarity(self.query, opening + ending))
                adjusted = dropped + len(opening)
                if (similarity, -adjusted) > (best[0], -best[1]):
                    best = (similarity, adjusted)
        self._scores[key] = best
        return best


def _worth_snapping(aligned: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """The alignments to snap to words and score: the MIN_WINDOWS best placed, and any other
    within SNAP_BAND points of the best (identical passages align equally well, so a tie is
    never cut here; a window far behind cannot take the lead, and the runners-up that set the
    margin are among the best placed)."""
    if not aligned:
        return []
    ranked = sorted(aligned, key=lambda a: -a[0])
    floor = ranked[0][0] - SNAP_BAND
    return [(at, until) for i, (score, at, until) in enumerate(ranked) if i < MIN_WINDOWS or score >= floor]


def _worth_extending(found: list[_Found]) -> list[int]:
    """The start words worth scoring on a whole long decode: the MIN_WINDOWS best by the head's
    score, and any other within EXTEND_BAND of the best (ties on the head included)."""
    by_start: dict[int, float] = {}
    for score, first, *_ in found:
        by_start[first] = max(score, by_start.get(first, 0.0))
    ranked = sorted(by_start.items(), key=lambda item: (-item[1], item[0]))
    floor = ranked[0][1] - EXTEND_BAND if ranked else 0.0
    return [first for i, (first, score) in enumerate(ranked) if i < MIN_WINDOWS or score >= floor]


def _suppress_overlaps(ranked: list[_Found]) -> list[_Found]:
    """Drops spans that share more than half of the shorter's words with a better-ranked span
    (the same place found from two windows, or shifted by a word)."""
    kept: list[_Found] = []
    owner: dict[int, int] = {}  # word -> the kept span covering it (the best-ranked one)
    for found in ranked:
        _, first, end, _ = found
        clash = False
        for k in {owner[w] for w in range(first, end) if w in owner}:
            _, other_first, other_end, _ = kept[k]
            overlap = min(end, other_end) - max(first, other_first)
            if 2 * overlap > min(end - first, other_end - other_first):
                clash = True
                break
        if not clash:
            for w in range(first, end):
                owner.setdefault(w, len(kept))
            kept.append(found)
    return kept
