"""Short teacher-style messages in Arabic and English."""

from __future__ import annotations

from services.tajweed.model import Verdict

_ARABIC_DIGITS = str.maketrans("0123456789.", "٠١٢٣٤٥٦٧٨٩٫")

VERDICT_EN = {
    Verdict.CORRECT: "right",
    Verdict.TOO_SHORT: "too short",
    Verdict.TOO_LONG: "too long",
    Verdict.MISSING: "missing",
    Verdict.WRONG: "wrong",
    Verdict.EXTRA: "extra",
    Verdict.UNCERTAIN: "unclear",
}
VERDICT_AR = {
    Verdict.CORRECT: "صحيح",
    Verdict.TOO_SHORT: "أقصر من المطلوب",
    Verdict.TOO_LONG: "أطول من المطلوب",
    Verdict.MISSING: "غير موجود",
    Verdict.WRONG: "خطأ",
    Verdict.EXTRA: "زيادة",
    Verdict.UNCERTAIN: "غير واضح",
}


def num(value: float, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def num_ar(value: float, digits: int = 1) -> str:
    return num(value, digits).translate(_ARABIC_DIGITS)


def lengths(values: tuple[int, ...]) -> str:
    return "/".join(str(v) for v in values)
