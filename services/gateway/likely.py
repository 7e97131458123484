"""What a recitation that is not its target sounds like: `ContentCheck.likely_recited` of a
mismatch and the `likely_recited` of a live `off_target` event.

Two searches can answer. The passage index of locate targets (services/locate) answers in
milliseconds (p95 6.3 ms over the whole Quran, docs/benchmarks.md) but must be built or loaded
first (25-60 s of CPU on two cores, once per reading, cached beside the references).
quran-transcript's PhoneticSearch (verification.PassageFinder) loads in 0.2 s, but its fuzzy
search grows with the decode's errors: seconds of CPU on a noisy decode (9.3 s measured on one
32-phoneme decode), and a live session waits for it before its next verdict.

So the index answers whenever the gateway holds it in memory for the whole Quran (a gateway
that has located, or was warmed with MUAALEM_LOCATE_WARM), and PhoneticSearch otherwise. A
mismatch never builds the index itself: that would spend a minute of the stages' CPU on a
question a slower search already answers. An index of some surahs only (MUAALEM_LOCATE_SURAHS)
cannot say what else was recited, so it is not asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from services.gateway.locating import recognized
from services.gateway.verification import DEFAULT_THRESHOLD, PassageFinder, RecognizedPassage
from services.locate.search import PassageSearch

log = logging.getLogger(__name__)

# A passage that reads this far from the decode is not offered as what was recited: against it,
# the recitation would itself be a mismatch.
MIN_SIMILARITY = DEFAULT_THRESHOLD


class LikelyRecited:
    """The passage index's search when it is at hand, PhoneticSearch otherwise."""

    def __init__(
        self,
        fallback: PassageFinder,
        loaded_search: Callable[[], PassageSearch | None] = lambda: None,
        max_results: int | None = None,
    ) -> None:
        self.fallback = fallback
        # Returns the in-memory search over the whole Quran, or None; never builds or waits.
        self._loaded_search = loaded_search
        self.max_results = fallback.max_results if max_results is None else max_results
        # Which search answered last (logged at debug level with its time).
        self.last_source = ""

    def load(self) -> object:
        """PhoneticSearch's index (0.2 s), for the gateway's warm-up: the passage index is
        never built for this."""
        return self.fallback.load()

    def find(self, decoded: str) -> list[RecognizedPassage]:
        started = time.perf_counter()
        search = self._loaded_search()
        if search is None:
            self.last_source = "phonetic-search"
            found = self.fallback.find(decoded)
        else:
            self.last_source = "passage-index"
            found = indexed(search, decoded, self.max_results)
        log.debug("likely recited: %d passages by the %s in %.1f ms", len(found), self.last_source,
                  (time.perf_counter() - started) * 1000)
        return found


def indexed(search: PassageSearch, decoded: str, max_results: int) -> list[RecognizedPassage]:
    """The index's best spans that read like the decode, one per starting word, best first."""
    passages: list[RecognizedPassage] = []
    starts: set[tuple[int, int, int]] = set()
    for span in search.search(decoded, limit=max_results).candidates:
        place = (span.start.surah, span.start.ayah, span.start.word)
        if span.score < MIN_SIMILARITY or place in starts:
            continue
        starts.add(place)
        passages.append(recognized(span))
        if len(passages) == max_results:
            break
    return passages

