"""Which word verdicts are final, and the promise that live and final verdicts agree.

A word is committed when a pause after it confirms it: a segment that ended at a pause
commits all its words; one cut at the length cap holds its last word back (it may continue
into the next segment, and a lone word at the start of a segment is judged on too little
audio). Re-reciting a word (a repeat) commits it again with its new verdict.

At the end the whole recording is assessed as Assess would; every word whose last live
verdict differs from the final one (or that was never sent) is sent again, marked revised,
before the final event: a word's last live verdict equals its final verdict by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.common.pb import gateway_pb2


class Committer:
    def __init__(self, word_count: int) -> None:
        self.word_count = word_count
        self._last: dict[int, gateway_pb2.WordAssessment] = {}
        self.revisions = 0

    def commit(self, words: Iterable[gateway_pb2.WordAssessment]) -> list[gateway_pb2.WordAssessment]:
        """Records the verdicts of words a pause confirmed; returns them (all are sent)."""
        sent = []
        for word in words:
            self._last[word.word_index] = word
            sent.append(word)
        return sent

    def missing(
        self, indexes: Iterable[int], words: list[gateway_pb2.WordAssessment]
    ) -> list[gateway_pb2.WordAssessment]:
        """Words the reciter skipped: a MISTAKE until a repeat says otherwise."""
        out = []
        for index in indexes:
            template = words[index]
            word = gateway_pb2.WordAssessment(
                word_index=index,
                uthmani=template.uthmani,
                surah=template.surah,
                ayah=template.ayah,
                verdict=gateway_pb2.WORD_VERDICT_MISTAKE,
            )
            self._last[index] = word
            out.append(word)
        return out

    def verdict(self, index: int) -> int | None:
        word = self._last.get(index)
        return None if word is None else int(word.verdict)

    @property
    def committed(self) -> set[int]:
        return set(self._last)

    def reconcile(self, final: gateway_pb2.Assessment) -> list[gateway_pb2.WordAssessment]:
        """The final words whose verdict the client has not seen last: they are sent again."""
        revised = []
        for word in final.words:
            if self.verdict(word.word_index) != int(word.verdict):
                revised.append(word)
                self._last[word.word_index] = word
        self.revisions += len(revised)
        return revised
