"""Mistakes a reciter makes, applied to the groups before they are spoken.

Each kind changes what is recited (the groups, hence the truth's phonemes and sifat) in one
reference word, and says what it changed. Word indexes are the reference's (0-based).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from services.common.errors import InvalidArgument

from .script import NASALS, Group, P, groups_of, reference_for

KINDS: tuple[str, ...] = (
    "letter", "haraka", "drop-word", "extra-word", "short-madd", "long-madd", "no-ghunnah", "no-qalqalah",
)

# Commonly confused letters, both ways.
_PAIRS = [
    (P.saad, P.seen), (P.haa_mohmala, P.haa), (P.qaf, P.kaf), (P.thaal, P.zay),
    (P.daad, P.daal), (P.taa_mofakhama, P.taa), (P.ayn, P.hamza), (P.thaa, P.seen),
]
CONFUSED: dict[str, str] = {}
for _a, _b in _PAIRS:
    CONFUSED.setdefault(_a, _b)
    CONFUSED.setdefault(_b, _a)

# A hidden nasal said clearly (izhar) has no ghunnah.
_CLEAR_NASAL = {P.noon_mokhfah: P.noon, P.meem_mokhfah: P.meem}
_HARAKA_SWAP = {P.fatha: P.kasra, P.kasra: P.fatha, P.dama: P.fatha}


@dataclass(frozen=True)
class Mistake:
    kind: str
    word_index: int

    @classmethod
    def parse(cls, spec: str) -> Mistake:
        """`KIND:WORD_INDEX`, e.g. `letter:2` (0-based word of the reference)."""
        kind, _, index = spec.partition(":")
        if kind not in KINDS:
            raise InvalidArgument(f"mistake {spec!r}: kind must be one of {', '.join(KINDS)}")
        try:
            word = int(index)
        except ValueError as exc:
            raise InvalidArgument(f"mistake {spec!r}: expected KIND:WORD_INDEX (0-based)") from exc
        if word < 0:
            raise InvalidArgument(f"mistake {spec!r}: the word index must be >= 0")
        return cls(kind, word)


@dataclass(frozen=True)
class Applied:
    """What a mistake changed: the reference's phonemes of the word's groups and what was said."""

    kind: str
    word_index: int
    reference: str
    recited: str
    detail: str


@cache
def letter_sifat() -> dict[str, dict[str, str]]:
    """The usual sifat of each consonant (most frequent labels in the first 40 ayahs of al-Baqarah)."""
    counts: dict[str, dict[str, Counter[str]]] = {}
    for ayah in range(1, 41):
        for g in groups_of(reference_for(2, ayah)):
            if g.consonant:
                per = counts.setdefault(g.consonant, {})
                for level, label in g.sifat.items():
                    if level != "phonemes_group":
                        per.setdefault(level, Counter())[label] += 1
    return {c: {lvl: cnt.most_common(1)[0][0] for lvl, cnt in per.items()} for c, per in counts.items()}


@cache
def _extra_word() -> tuple[Group, ...]:
    """A word from elsewhere (the first word of 2:30, وَإِذْ), recited where it does not belong."""
    return tuple(g for g in groups_of(reference_for(2, 30)) if g.word_index == 0)


def _word_groups(groups: Sequence[Group], word: int) -> list[int]:
    return [i for i, g in enumerate(groups) if g.word_index == word and g.reference_index >= 0]


def _fail(kind: str, word: int, why: str) -> InvalidArgument:
    return InvalidArgument(f"mistake {kind}:{word}: {why}")


def apply(groups: Sequence[Group], mistake: Mistake, words: int) -> tuple[list[Group], Applied]:
    """The groups with one mistake in them; InvalidArgument when that word cannot carry it."""
    kind, word = mistake.kind, mistake.word_index
    if word >= words:
        raise _fail(kind, word, f"the target has {words} words (0..{words - 1})")
    out = list(groups)
    members = _word_groups(out, word)
    if not members:
        raise _fail(kind, word, "the word shares all its sounds with its neighbour (merged in recitation)")
    said = "".join(out[i].phonemes for i in members)

    def done(new: list[Group], detail: str) -> tuple[list[Group], Applied]:
        recited = "".join(g.phonemes for g in new if g.word_index == word)
        return new, Applied(kind, word, said, recited, detail)

    if kind == "drop-word":
        return done([g for i, g in enumerate(out) if i not in set(members)], "word not recited")
    if kind == "extra-word":
        extra = [Group(g.phonemes, word, dict(g.sifat)) for g in _extra_word()]
        at = members[-1] + 1
        new = out[:at] + extra + out[at:]
        return new, Applied(kind, word, said, said + "".join(g.phonemes for g in extra),
                            "an extra word (وَإِذْ) recited after it")
    for i in members:
        g = out[i]
        changed = _change(kind, g, out[i + 1] if i + 1 < len(out) else None)
        if changed is not None:
            new_group, detail = changed
            out[i] = new_group
            return done(out, detail)
    raise _fail(kind, word, f"the word ({said}) has no sound this mistake can change")


def _change(kind: str, g: Group, following: Group | None) -> tuple[Group, str] | None:
    if kind == "letter" and g.consonant in CONFUSED:
        new = CONFUSED[g.consonant]
        table = letter_sifat().get(new, {})
        return g.with_phonemes(g.phonemes.replace(g.consonant, new), **table), f"{g.consonant} said as {new}"
    if kind == "haraka" and g.vowel in _HARAKA_SWAP and not (following is not None and following.is_madd):
        new = _HARAKA_SWAP[g.vowel]
        return g.with_phonemes(g.phonemes.replace(g.vowel, new)), f"{g.vowel} said as {new}"
    if kind == "short-madd" and g.is_madd:
        n = g.madd_count
        short = 2 if n >= 4 else 1
        return g.with_phonemes(g.phonemes[0] * short), f"madd of {n} harakat held {short}"
    if kind == "long-madd" and g.is_madd:
        n = g.madd_count
        return g.with_phonemes(g.phonemes[0] * (n + 2)), f"madd of {n} harakat held {n + 2}"
    if kind == "no-ghunnah" and g.consonant in NASALS and g.sifat.get("ghonna") == "maghnoon" and (
        g.consonant_count >= 2
    ):
        rest = g.phonemes[g.consonant_count :]
        # With a vowel the shadda stays (two copies, no hold); a hidden nasal is said clearly.
        plain = g.consonant * 2 + rest if g.vowel else _CLEAR_NASAL.get(g.consonant, g.consonant) + rest
        return g.with_phonemes(plain, ghonna="not_maghnoon"), f"{g.phonemes} said without its ghunnah ({plain})"
    if kind == "no-qalqalah" and g.qalqalah:
        return g.with_phonemes(g.phonemes.replace(P.qlqla, ""), qalqla="not_moqalqal"), "qalqalah not released"
    return None

