"""The model's phonetic script written back in the mushaf's letters, for what a learner reads.

The phonetic script (quran-transcript's) spells length and tajweed with symbols of its own: a
madd as repeated ا/ۦ/ۥ, a shadda or ghunnah as a doubled or tripled letter, a qalqalah as ڇ
after the letter, a hidden noon or meem as ں/۾. A learner reads "heard بْ instead of دُ", not
"heard بڇ instead of دُ". `readable` turns a phonetic string into letters with their harakat:

- a run of one letter (doubled, or tripled for a ghunnah) is the letter with a shadda;
- a letter followed by no haraka (and not by a madd letter) is sakin: it gets a sukun, and
  so does the letter a qalqalah mark follows;
- the madd letters read as ا, ي, و once, whatever their count (a length is the madd rule's
  finding, never a letter's);
- imala, tasheel and the ikhtilas damma read as their plain letter or haraka; the sakt sign
  stays (the mushaf writes it the same way).

The symbols are written out here rather than imported from quran-transcript so that the client,
which carries no phonetizer, can show them; tests/common/test_script.py checks them against
quran-transcript's alphabet.
"""

from __future__ import annotations

LETTERS = "ءبتثجحخدذرزسشصضطظعغفقكلمنهوي"
ALIF, YAA_MADD, WAW_MADD = "ا", "ۦ", "ۥ"
FATHA, DAMMA, KASRA = "َ", "ُ", "ِ"
FATHA_IMALA, ALIF_IMALA = "۪", "ـ"
HAMZA_TASHEEL, QALQALAH, NOON_HIDDEN, MEEM_HIDDEN, SAKT, DAMMA_IKHTILAS = "ٲ", "ڇ", "ں", "۾", "ۜ", "ؙ"
SHADDA, SUKUN = "ّ", "ْ"

HARAKAT = FATHA + DAMMA + KASRA
# Symbols that stand for a plain letter or haraka of the mushaf.
_PLAIN = {
    FATHA_IMALA: FATHA,
    DAMMA_IKHTILAS: DAMMA,
    ALIF_IMALA: ALIF,
    HAMZA_TASHEEL: "ء",
    NOON_HIDDEN: "ن",
    MEEM_HIDDEN: "م",
    YAA_MADD: "ي",
    WAW_MADD: "و",
}
MADD = frozenset({ALIF, YAA_MADD, WAW_MADD, ALIF_IMALA})
CONSONANTS = frozenset(LETTERS) | {HAMZA_TASHEEL, NOON_HIDDEN, MEEM_HIDDEN}


def _mark_after(phonemes: str, at: int) -> str:
    """The haraka that follows position `at` (after symbols that only refine it), if any."""
    if at < len(phonemes) and phonemes[at] in HARAKAT + FATHA_IMALA + DAMMA_IKHTILAS:
        return _PLAIN.get(phonemes[at], phonemes[at])
    return ""


def readable(phonemes: str) -> str:
    """`phonemes` (the model's phonetic script) in the mushaf's letters and harakat."""
    out: list[str] = []
    i = 0
    while i < len(phonemes):
        symbol = phonemes[i]
        if symbol in MADD:
            run = i
            while run < len(phonemes) and phonemes[run] == symbol:
                run += 1
            out.append(_PLAIN.get(symbol, symbol))
            i = run
            continue
        if symbol in CONSONANTS:
            run = i
            while run < len(phonemes) and phonemes[run] == symbol:
                run += 1
            letter = _PLAIN.get(symbol, symbol)
            mark = _mark_after(phonemes, run)
            shadda = SHADDA if run - i >= 2 else ""
            if mark:
                out.append(letter + shadda + mark)
                run += 1
            elif run < len(phonemes) and phonemes[run] in MADD:
                out.append(letter + shadda)
            else:
                out.append(letter + shadda + SUKUN)
            if run < len(phonemes) and phonemes[run] == QALQALAH:
                run += 1
            i = run
            continue
        if symbol == QALQALAH:
            i += 1
            continue
        out.append(_PLAIN.get(symbol, symbol))
        i += 1
    return "".join(out)
