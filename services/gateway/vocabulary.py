"""One phoneme vocabulary contract between the reference builder, the asr model and alignment.

Three places name phonemes by id: the reference builder (quran-transcript's alphabet, blank at
0), the asr checkpoint's vocab.json (which it publishes in GetModelInfo), and the alignment
service's phoneme_vocab.json (its thresholds are keyed by label). Comparing only the column
count lets a checkpoint with the same labels in another order misalign every answer silently, so
the gateway compares the labels id by id when it starts and whenever the asr model version
changes. A mismatch takes the gateway out of service (NOT_SERVING) and every Assess is refused
with a message that names the first differing label; once they agree again it serves again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from services.common.errors import Unavailable
from services.common.pb import asr_pb2

log = logging.getLogger(__name__)

PHONEMES = "phonemes"

# Called with False when a mismatch is found and True when it is resolved (the gateway server
# flips its health status with it).
ServingHook = Callable[[bool], Awaitable[None]]


def reference_labels(ids: Mapping[str, int]) -> tuple[str, ...]:
    """The reference builder's {phoneme: id} as labels by id (id 0, the blank, left empty)."""
    size = max(ids.values(), default=0) + 1
    labels = [""] * size
    for symbol, index in ids.items():
        labels[index] = symbol
    return tuple(labels)


def first_difference(named: Mapping[str, Sequence[str]]) -> str | None:
    """None when every vocabulary gives each id the same label; otherwise a message naming the
    first id where they differ (the blank at id 0 is named differently by each and not compared;
    an empty label means that vocabulary does not care about the id)."""
    longest = max(len(labels) for labels in named.values())
    for index in range(1, longest):
        seen = {name: (labels[index] if index < len(labels) else None) for name, labels in named.items()}
        known = {label for label in seen.values() if label != ""}
        if len(known) > 1:
            said = ", ".join(f"{name} says {label!r}" if label is not None else f"{name} has no id {index}"
                             for name, label in seen.items())
            return f"phoneme id {index} means different labels: {said}"
    return None


def asr_phonemes(info: asr_pb2.GetModelInfoResponse) -> tuple[str, ...]:
    """The asr's phoneme labels by id; empty when it publishes none (an older asr, or a stand-in)."""
    for level in info.vocabularies:
        if level.level == PHONEMES:
            return tuple(level.tokens)
    return ()


@dataclass
class VocabularyContract:
    """What the last check found: the asr's phoneme labels (sent to alignment with every Align),
    or the problem that keeps the gateway out of service."""

    reference: tuple[str, ...]
    alignment: tuple[str, ...]
    on_change: ServingHook | None = None
    checked: str | None = None
    labels: tuple[str, ...] = ()
    problem: str | None = None

    @classmethod
    def default(cls) -> VocabularyContract:
        from services.alignment.vocabulary import default_vocabulary
        from services.gateway.reference.builder import phoneme_vocabulary

        return cls(reference=reference_labels(phoneme_vocabulary()), alignment=default_vocabulary())

    async def check(self, version: str, info: asr_pb2.GetModelInfoResponse) -> None:
        """Compares the asr model `version`'s vocabulary with the other two. An asr that publishes
        none cannot be checked: that is logged, and alignment keeps its own labels, as before the
        contract existed."""
        labels = asr_phonemes(info)
        if not labels:
            log.warning("asr model %s publishes no phoneme vocabulary: its label order is not checked", version)
        problem = first_difference(
            {"the asr checkpoint's vocab.json": labels or self.alignment,
             "the reference builder (quran-transcript)": self.reference,
             "alignment's phoneme_vocab.json": self.alignment}
        )
        was_ok = self.problem is None
        self.checked, self.labels = version, labels
        self.problem = f"vocabulary mismatch with asr model {version}: {problem}" if problem else None
        if self.problem is not None:
            log.critical("%s; the gateway stops serving until they agree", self.problem)
        if self.on_change is not None and was_ok != (self.problem is None):
            await self.on_change(self.problem is None)

    def require(self) -> None:
        """Raises while the vocabularies disagree."""
        if self.problem is not None:
            raise Unavailable(self.problem)
