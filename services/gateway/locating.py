"""Locate targets (issue 25): which passage a recitation is, decided from its decode.

The gateway owns one IndexCache over its reference store (Redis when configured, the in-process
LRU otherwise, with the LRU standing in while Redis is down), so every gateway of a deployment
shares one built index, and a PassageSearch per index it has loaded (searches are read-only and
run in worker threads). The index is built at the first locate target (which waits for it) or
at start with MUAALEM_LOCATE_WARM.

The decision (`decide`) never hides doubt: the best span is assessed whatever the margin, but it
is only *sure* when it leads every span with other words by the sure margin, no other passage
has the same words, and it reads like the decode at all (MIN_SURE_SCORE); otherwise the answer
says so and lists the candidates the search could not rule out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.follow.stretch import imlaey_index
from services.gateway.locate_settings import LocateConfig
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.cache import ReferenceStore
from services.gateway.verification import RecognizedPassage
from services.locate.cache import IndexCache, index_key
from services.locate.index import PassageIndex, WordPlace
from services.locate.search import LocateResult, PassageSearch, Span

log = logging.getLogger(__name__)

# A best span that reads this far from the decode is no recitation of it, whatever its lead
# (random speech scores about 0.3 against the closest passage of its length).
MIN_SURE_SCORE = 0.6
# Candidates listed beside a doubtful answer (the refrain of Ar-Rahman ties 31 ayahs: the first
# ones say enough).
MAX_CANDIDATES = 8

_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")

NOTHING_FOUND = "no passage of the Quran was found in the recitation (nothing it decoded reads like one)"


@dataclass(frozen=True)
class Decision:
    """The span to assess and how sure the search was of it."""

    span: Span
    sure: bool
    ambiguous: bool
    margin: float
    # The others it could be (best first), filled only when not sure.
    candidates: tuple[Span, ...]
    prelude: tuple[str, ...]


def decide(result: LocateResult, sure_margin: float, min_words: int = 1) -> Decision | None:
    """The span to assess from a search's result; None when it found nothing. `min_words`: the
    fewest words a sure span has (a live session decides on the first words it hears)."""
    best = result.best
    if best is None:
        return None
    # The search ranks ties in mushaf order among equal adjustments: the first is as good as any.
    sure = (
        result.margin >= sure_margin
        and not result.ambiguous
        and best.score >= MIN_SURE_SCORE
        and best.end_word - best.first_word >= min_words
    )
    others = () if sure else tuple(c for c in result.candidates if c is not best)[:MAX_CANDIDATES]
    return Decision(best, sure, result.ambiguous, result.margin, others, result.prelude)


def _ayah_words(surah: int, ayah: int) -> int:
    return len(quran.ayah_text(surah, ayah).uthmani_words)


def span_target(start: WordPlace, last: WordPlace) -> common_pb2.Target:
    """The target that assesses exactly the span: whole ayahs of one surah as an ayah or an ayah
    range (their references read each ayah as the mushaf does), anything else as a run of
    imlaey words from the first (read from a stop, to a stop: as the span was recited)."""
    whole = start.word == 0 and last.word == _ayah_words(last.surah, last.ayah) - 1
    if whole and start.surah == last.surah:
        if start.ayah == last.ayah:
            return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=start.surah, ayah=start.ayah))
        return common_pb2.Target(
            ayah_range=common_pb2.AyahRangeTarget(surah=start.surah, first_ayah=start.ayah, last_ayah=last.ayah)
        )
    first_imlaey = imlaey_index(start.surah, start.ayah, start.word)
    count = 0
    surah, ayah = start.surah, start.ayah
    while (surah, ayah) != (last.surah, last.ayah):
        count += len(quran.ayah_text(surah, ayah).imlaey_words)
        following = quran.next_ayah(surah, ayah)
        if following is None:
            raise ValueError(f"span {start} .. {last} does not run in mushaf order")
        surah, ayah = following
    count += imlaey_index(last.surah, last.ayah, last.word + 1) - first_imlaey
    return common_pb2.Target(
        words=common_pb2.WordRangeTarget(
            surah=start.surah, ayah=start.ayah, start_word=first_imlaey, word_count=max(count, 1)
        )
    )


def uthmani_between(start: WordPlace, last: WordPlace) -> str:
    """The Uthmani words from start to last, both included, across ayahs."""
    return quran.uthmani_between((start.surah, start.ayah, start.word), (last.surah, last.ayah, last.word))


def recognized(span: Span) -> RecognizedPassage:
    """A span as a passage: end_word exclusive, counted in (end_surah, end_ayah)."""
    return RecognizedPassage(
        surah=span.start.surah,
        ayah=span.start.ayah,
        start_word=span.start.word,
        end_surah=span.last.surah,
        end_ayah=span.last.ayah,
        end_word=span.last.word + 1,
        uthmani=uthmani_between(span.start, span.last),
        similarity=span.score,
    )


def passage(span: Span) -> gateway_pb2.RecognizedPassage:
    """A span as the API's passage."""
    return recognized(span).to_proto()


def located_proto(
    decision: Decision, sure_margin: float, surahs: tuple[int, ...] | None, search_ms: float, index_ms: float
) -> gateway_pb2.Located:
    return gateway_pb2.Located(
        passage=passage(decision.span),
        margin=decision.margin,
        sure=decision.sure,
        sure_margin=sure_margin,
        ambiguous=decision.ambiguous,
        candidates=[passage(c) for c in decision.candidates],
        prelude=list(decision.prelude),
        surahs=list(surahs or ()),
        search_ms=search_ms,
        index_ms=index_ms,
    )


@dataclass(frozen=True)
class Location:
    """A decided locate: the target to assess, and what to tell the caller about it."""

    target: common_pb2.Target
    decision: Decision
    located: gateway_pb2.Located


class LocateService:
    """The gateway's passage index (one per reading, from the cache or built) and its search."""

    def __init__(self, store: ReferenceStore, config: LocateConfig, *, fallback: ReferenceStore | None = None) -> None:
        self.config = config
        self._cache = IndexCache(store, fallback=fallback, workers=config.workers)
        # Index key -> its search (an index is ~0.5 M phonemes; its search's arrays ~10 MB).
        self._searches: dict[str, PassageSearch] = {}

    async def search_for(self, moshaf_values: dict[str, Any] | None = None) -> tuple[PassageSearch, float]:
        """The search over the index of this reading, and the ms it took to get it (0 when it was
        already in memory)."""
        values = dict(moshaf_values) if moshaf_values is not None else moshaf_mod.default_values()
        # An index in memory is searched at once: the store is read (and the value decoded) only
        # to load one, not on every search (a live session searches every second or two).
        known = self._searches.get(index_key(quran.phonetizer_version(), values, self.config.surahs))
        if known is not None:
            return known, 0.0
        started = time.perf_counter()
        cached = await self._cache.get(values, surahs=self.config.surahs)
        search = self._searches.get(cached.key)
        if search is None:
            search = await asyncio.to_thread(PassageSearch, cached.index)
            self._searches[cached.key] = search
            log.info(
                "passage index %s ready: %s, built in %.1f s, read in %.2f s",
                cached.key,
                "cache hit" if cached.cache_hit else "built",
                cached.build_s,
                cached.load_s,
            )
            return search, (time.perf_counter() - started) * 1000
        return search, 0.0

    def loaded_whole_quran(self) -> PassageSearch | None:
        """The default reading's search when it is in memory and covers the whole Quran; None
        otherwise. Never builds nor waits (likely.LikelyRecited asks it from worker threads)."""
        if self.config.surahs is not None:
            return None
        return self._searches.get(index_key(quran.phonetizer_version(), moshaf_mod.default_values(), None))

    async def warm(self) -> None:
        """Builds or loads the default reading's index (MUAALEM_LOCATE_WARM); a failure is logged,
        and the first locate target tries again."""
        try:
            await self.search_for(None)
        except Exception:
            log.exception("the passage index could not be warmed; the first locate target builds it")

    async def locate(self, decoded: str, moshaf: common_pb2.MoshafAttributes | None, *, min_words: int = 1) -> Location:
        """The span of the Quran a decode recites; InvalidArgument when nothing reads like it.
        `min_words` > 1 (a live session deciding early): a sure span has that many words, and a
        decode that holds only the isti'adha or the basmala is never sure (no passage yet)."""
        values = moshaf_mod.to_dict(moshaf)
        search, index_ms = await self.search_for(None if moshaf_mod.is_default(values) else values)
        started = time.perf_counter()
        result = await asyncio.to_thread(search.search, decoded)
        if min_words > 1 and search.prelude_only(decoded):
            min_words = search.index.word_count + 1
        search_ms = (time.perf_counter() - started) * 1000
        decision = decide(result, self.config.sure_margin, min_words)
        if decision is None:
            raise InvalidArgument(NOTHING_FOUND)
        located = located_proto(decision, self.config.sure_margin, index_scope(search.index), search_ms, index_ms)
        return Location(span_target(decision.span.start, decision.span.last), decision, located)


def index_scope(index: PassageIndex) -> tuple[int, ...] | None:
    """The surahs an index covers; None for the whole Quran."""
    surahs = index.surahs
    return None if len(surahs) == quran.SURAH_COUNT else surahs


def form_asks_to_locate(value: str | None, has_passage: bool) -> bool:
    """The HTTP form's `locate` field: true asks for a locate target (and excludes surah/ayah)."""
    text = (value or "").strip().lower()
    if text in _NO:
        return False
    if text not in _YES:
        raise InvalidArgument(f"locate: expected true or false, got {value!r}")
    if has_passage:
        raise InvalidArgument("give surah and ayah, or locate=true to find the passage, not both")
    return True
