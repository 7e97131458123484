"""Which attempt at each word stands, and which it replaced.

A word is committed when a pause after it confirms it: a stretch that ended at a pause commits
all its words; one cut at the length cap holds its last word back (it may continue into the
next segment). A word recited again (a repeat, a restart, the look-back) gets a new attempt;
the attempt that stands is the latest recited one, in the order of the recording (a segment
retried at the end does not outrank a later segment), and a skipped word's "not recited"
stands only until the word is recited.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.gateway.follow.attempts import Attempt


class Committer:
    def __init__(self, word_count: int) -> None:
        self.word_count = word_count
        self._attempts: dict[int, list[Attempt]] = {}
        # Words whose standing attempt was sent to the learner.
        self.sent: set[int] = set()

    @staticmethod
    def _rank(attempt: Attempt) -> tuple[bool, int]:
        return (not attempt.skipped, attempt.segment_index if attempt.segment_index is not None else -1)

    def commit(self, attempts: Iterable[Attempt]) -> list[tuple[Attempt, list[Attempt]]]:
        """Records attempts; returns those that now stand, each with the attempts it replaced."""
        standing = []
        for attempt in attempts:
            history = self._attempts.setdefault(attempt.index, [])
            history.append(attempt)
            # Stable: of two attempts of the same rank, the one recorded later stands.
            history.sort(key=self._rank)
            if history[-1] is attempt:
                standing.append((attempt, history[:-1]))
                self.sent.add(attempt.index)
        return standing

    def drop(self, segment_index: int) -> None:
        """Forgets every attempt one segment made (a segment another passage took)."""
        for index in list(self._attempts):
            kept = [a for a in self._attempts[index] if a.segment_index != segment_index]
            if kept:
                self._attempts[index] = kept
            else:
                del self._attempts[index]
                self.sent.discard(index)

    def settled(self, index: int) -> tuple[Attempt, list[Attempt]] | None:
        """The standing attempt at a word and those it replaced; None if it has none."""
        history = self._attempts.get(index)
        return (history[-1], history[:-1]) if history else None

    @property
    def committed(self) -> set[int]:
        return set(self._attempts)
