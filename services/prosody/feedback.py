"""The learner's feedback lines, in Arabic and English, from templates: one candidate per
finding of the comparison with a weight (how much following it would bring the recitation
closer to the teacher's), of which the comparison keeps the three heaviest."""

from __future__ import annotations

from dataclasses import dataclass

MAQAM_AR = {
    "Bayati": "البياتي",
    "Saba": "الصبا",
    "Hijaz": "الحجاز",
    "Rast": "الراست",
    "Nahawand": "النهاوند",
    "Sikah": "السيكاه",
    "Ajam": "العجم",
    "Kurd": "الكرد",
}


@dataclass(frozen=True)
class Feedback:
    kind: str
    ar: str
    en: str
    weight: float
    word_index: int = -1


def madd(word: str, word_index: int, learner: float, teacher: float, weight: float) -> Feedback:
    return Feedback(
        "madd",
        f"مدّك في «{word}» {learner:.1f} حركة، وشيخك يمدّه {teacher:.0f} حركات",
        f"your madd in {word} is {learner:.1f} harakat, your teacher holds {teacher:.0f}",
        weight,
        word_index,
    )


_MOTION_AR = {"rises": "يرتفع", "falls": "ينخفض", "stays flat": "يثبت"}
_MOTION_AR_YOU = {"rises": "يرتفع", "falls": "ينخفض", "stays flat": "يبقى ثابتًا"}


def contour(word: str, word_index: int, learner: str, teacher: str, weight: float) -> Feedback:
    return Feedback(
        "contour",
        f"صوتك {_MOTION_AR_YOU[learner]} على «{word}» حيث {_MOTION_AR[teacher]} صوت شيخك",
        f"your voice {learner} on {word} where your teacher's voice {teacher}",
        weight,
        word_index,
    )


def tempo(ratio: float, weight: float) -> Feedback:
    pct = round(abs(ratio - 1.0) * 100)
    if ratio > 1:
        return Feedback(
            "tempo",
            f"قراءتك أبطأ من قراءة شيخك بنحو {pct}٪",
            f"you recite about {pct}% slower than your teacher",
            weight,
        )
    return Feedback(
        "tempo", f"قراءتك أسرع من قراءة شيخك بنحو {pct}٪", f"you recite about {pct}% faster than your teacher", weight
    )


def pitch_range(learner: float, teacher: float, weight: float) -> Feedback:
    return Feedback(
        "range",
        f"يتحرك صوتك في مدى {learner:.0f} أنصاف نغمة، وصوت شيخك في {teacher:.0f}: دع صوتك يتنقّل أكثر",
        f"your melody spans {learner:.0f} semitones, your teacher's {teacher:.0f}: let your voice move more",
        weight,
    )


def final_lowering(word: str, word_index: int, weight: float) -> Feedback:
    return Feedback(
        "final_lowering",
        f"يخفض شيخك صوته عند الوقف على «{word}»، وصوتك لا ينخفض",
        f"your teacher lowers the voice at the stop on {word}, yours does not fall",
        weight,
        word_index,
    )


def maqam(learner: str, teacher: str, weight: float) -> Feedback:
    return Feedback(
        "maqam",
        f"يقرأ شيخك على مقام {MAQAM_AR.get(teacher, teacher)}، "
        f"وتبدو قراءتك على مقام {MAQAM_AR.get(learner, learner)} (تقدير لا حكم)",
        f"your teacher recites in maqam {teacher}; you seem to be in {learner} (a hint, not a verdict)",
        weight,
    )
