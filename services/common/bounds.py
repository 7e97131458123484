"""The ranges every integer of a request must fall in, known without the Quran text.

The front ends (HTTP form and path, JSON bodies, WebSocket frames, the command line) check
numbers against these before anything reaches protobuf, so a caller reads the valid range
instead of an overflow; the gateway's reference code then checks what needs the text itself
(the words of one ayah). The ayah counts are the Tanzil text's (114 surahs, 6,236 ayahs); a
test holds them equal to quran-transcript's, which the gateway reads.
"""

from __future__ import annotations

from services.common.errors import InvalidArgument

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

SURAH_COUNT = 114
AYAH_COUNTS: tuple[int, ...] = (
    7, 286, 200, 176, 120, 165, 206, 75, 129, 109, 123, 111, 43, 52, 99, 128, 111, 110, 98, 135,
    112, 78, 118, 64, 77, 227, 93, 88, 69, 60, 34, 30, 73, 54, 45, 83, 182, 88, 75, 85,
    54, 53, 89, 59, 37, 35, 38, 29, 18, 45, 60, 49, 62, 55, 78, 96, 29, 22, 24, 13,
    14, 11, 11, 18, 12, 12, 30, 52, 52, 44, 28, 28, 20, 56, 40, 31, 50, 40, 46, 42,
    29, 19, 36, 25, 22, 17, 19, 26, 30, 20, 15, 21, 11, 8, 8, 19, 5, 8, 8, 11,
    11, 8, 3, 9, 5, 4, 7, 3, 6, 3, 5, 4, 5, 6,
)  # fmt: skip
MAX_AYAH = max(AYAH_COUNTS)
# The longest ayah (2:282) has 129 imlaey words, so a range starts at word 0..128.
MAX_WORDS_PER_AYAH = 129
# A reference larger than these makes alignment and tajweed slow and the answer unreadable;
# al-Baqarah (286 ayahs) still fits.
MAX_AYAHS_PER_TARGET = 300
MAX_WORDS_PER_TARGET = 6_500


def ayah_count(surah: int) -> int | None:
    """Ayahs in the surah, or None for a number that is no surah."""
    return AYAH_COUNTS[surah - 1] if 1 <= surah <= SURAH_COUNT else None


def ayah_range(surah: int | None) -> tuple[int, int]:
    """Valid ayah numbers: those of the surah when it is known, else those of any surah."""
    count = ayah_count(surah) if surah is not None else None
    return 1, count if count is not None else MAX_AYAH


def out_of_range(field: str, low: int, high: int, got: object, why: str = "") -> InvalidArgument:
    """The one wording of a bad integer, for every front end: the field, the range (and why it
    is that range), the value as it came (text quoted, a JSON number as written)."""
    because = f" ({why})" if why else ""
    return InvalidArgument(f"{field} must be an integer in {low}..{high}{because}, got {shown(got)}")


def shown(value: object, limit: int = 48) -> str:
    """A caller's value as an error message quotes it: text quoted, and cut short, so that a
    megabyte of digits does not come back in the answer and the log."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def check(field: str, value: int, low: int, high: int, why: str = "") -> int:
    if not low <= value <= high:
        raise out_of_range(field, low, high, value, why)
    return value
