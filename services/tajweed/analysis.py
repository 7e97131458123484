"""Everything the validators share about one request, computed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.tajweed.calibration import Calibration
from services.tajweed.config import TajweedConfig
from services.tajweed.energy import EnergyProfile
from services.tajweed.matching import DecodedGroup, GroupMatch
from services.tajweed.model import Finding, Group, Reference, Tempo, ValidateInput
from services.tajweed.phonetics import PhoneticIndex
from services.tajweed.rules import MaddTarget
from services.tajweed.timeline import Timeline


@dataclass(frozen=True)
class Analysis:
    request: ValidateInput
    config: TajweedConfig
    index: PhoneticIndex
    timeline: Timeline | None
    energy: EnergyProfile | None
    tempo: Tempo
    match: GroupMatch | None
    madd: tuple[MaddTarget, ...]
    # Groups a madd or leen rule lengthens.
    lengthened: frozenset[int]
    frame_s: float

    @property
    def reference(self) -> Reference:
        return self.request.reference

    @property
    def calibration(self) -> Calibration:
        return self.config.calibration

    def group_text_span(self, group: int) -> tuple[int, int]:
        g = self.reference.groups[group]
        return self.index.text_span(g.start, g.end)

    def group_time(self, group: int) -> tuple[float, float] | None:
        if self.timeline is None:
            decoded = self.decoded(group)
            return decoded.time_span(self.frame_s) if decoded is not None else None
        return self.timeline.span(group, group)

    def range_time(self, phoneme_start: int, phoneme_end: int) -> tuple[float, float] | None:
        """Time of the groups covering a phoneme range (a point for an empty range)."""
        if self.timeline is None:
            return None
        if phoneme_end <= phoneme_start:
            if phoneme_start >= len(self.reference.phonemes):
                end = self.timeline.ends[-1]
                return end, end
            onset = self.timeline.group_spans[self.reference.group_at(phoneme_start).index][0]
            return onset, onset
        first = self.reference.group_at(phoneme_start).index
        last = self.reference.group_at(phoneme_end - 1).index
        return self.timeline.span(first, last)

    def group_finding(self, group: Group, decoded: DecodedGroup | None, *, source: str, **specific: Any) -> Finding:
        """A finding on one reference group: where it is (text, time, phonemes) and what was heard
        there come from the group and its decoded counterpart; `specific` gives the rest (and may
        override any of those)."""
        located: dict[str, Any] = {
            "word_index": group.word_index,
            "text_span": self.group_text_span(group.index),
            "time_span": self.group_time(group.index),
            "phoneme_start": group.start,
            "phoneme_end": group.end,
            "expected_phonemes": group.phonemes,
            "heard_phonemes": decoded.phonemes if decoded is not None else "",
            "source": source,
        }
        return Finding(**{**located, **specific})

    def decoded(self, group: int) -> DecodedGroup | None:
        return self.match.of(group) if self.match is not None else None

    def is_final(self, group: int) -> bool:
        return group == len(self.reference.groups) - 1
