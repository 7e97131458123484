"""Settings of the passage search behind locate targets (Target.locate, issue 25)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.config import ConfigError, setting
from services.gateway.reference import quran

_GROUP = "gateway"

LOCATE_SURAHS = setting(
    "MUAALEM_LOCATE_SURAHS",
    "",
    "Surahs the passage index of locate targets covers, e.g. `90-114` or `1,36,67-114`; empty: the whole "
    "Quran. A smaller index builds faster (the whole mushaf takes 40-60 s on two cores, once, then cached "
    "beside the references) and cannot place a recitation outside it.",
    group=_GROUP,
    pattern=r"(\d{1,3}(-\d{1,3})?(,\d{1,3}(-\d{1,3})?)*)?",
    pattern_doc="empty, or surah numbers and ranges separated by commas",
)
LOCATE_WARM = setting(
    "MUAALEM_LOCATE_WARM",
    False,
    "Build (or load) the passage index when the gateway starts instead of at the first locate target, "
    "which otherwise waits for it. Held, the index of the whole Quran also names what a mismatch or an "
    "off-target live stretch recited, in milliseconds instead of up to seconds of phonetic search.",
    group=_GROUP,
)
LOCATE_SURE_MARGIN = setting(
    "MUAALEM_LOCATE_SURE_MARGIN",
    0.05,
    "How far (similarity, 0..1) the best passage must lead any other with other words for a locate to be "
    "sure; below it the answer still assesses the best one, with located.sure false and the candidates.",
    group=_GROUP,
    ge=0,
    le=1,
)
LOCATE_WORKERS = setting(
    "MUAALEM_LOCATE_WORKERS",
    2,
    "Processes that phonetize the Quran when the passage index is built.",
    group=_GROUP,
    ge=1,
)

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_surahs(text: str) -> tuple[int, ...] | None:
    """`90-114` -> (90, ..., 114); "" -> None (the whole Quran). ConfigError names a bad surah."""
    if not text.strip():
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise ConfigError(f"MUAALEM_LOCATE_SURAHS: {part!r} is not a surah or a range")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 1 <= first <= last <= quran.SURAH_COUNT:
            raise ConfigError(f"MUAALEM_LOCATE_SURAHS: {part!r} is not within 1..{quran.SURAH_COUNT}")
        chosen.update(range(first, last + 1))
    return None if len(chosen) == quran.SURAH_COUNT else tuple(sorted(chosen))


@dataclass(frozen=True)
class LocateConfig:
    # None: the whole Quran.
    surahs: tuple[int, ...] | None = None
    warm: bool = False
    sure_margin: float = 0.05
    workers: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocateConfig:
        return cls(
            surahs=parse_surahs(LOCATE_SURAHS.get(environ)),
            warm=LOCATE_WARM.get(environ),
            sure_margin=LOCATE_SURE_MARGIN.get(environ),
            workers=LOCATE_WORKERS.get(environ),
        )
