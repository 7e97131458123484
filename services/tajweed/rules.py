"""Which reference groups each length rule applies to, and what it expects of them.

Madd rules come from quran-transcript's mappings (their class name and golden_len, which
the package computed from the MoshafAttributes). A rule's phoneme span sometimes includes
the haraka before the madd ('َاا'), or a whole disjoint letter ('كَااااااف'); the madd
itself is the group in the span whose core is the tag's symbol (ا ۦ ۥ, or ي و for leen).

The package has a single NormalMaddRule for the 2-count madds; the kind is read from the
context: badal (the madd follows a hamza), silah (the small waw/yaa after the pronoun ه;
a silah before a hamza is a MonfaselMaddRule: silah kubra), 'iwad (the alif of a
tanween-fath at the final stop).

Ghunnah has no rule in the mappings: the script shows it as a run of 3+ nasals (ننننَ
for a doubled noon, ںںں ikhfa, ۾۾۾ iqlab or ikhfa shafawi) or of yaa/waw after a merged
noon (idgham with ghunnah).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.tajweed import phonetics
from services.tajweed.model import Group, Reference, RuleKind, RuleRef
from services.tajweed.phonetics import PhoneticIndex

MADD_RULE_CLASSES = frozenset(
    {
        "NormalMaddRule",
        "MonfaselMaddRule",
        "MottaselMaddRule",
        "MottaselMaddPauseRule",
        "LazemMaddRule",
        "AaredMaddRule",
        "LeenMaddRule",
    }
)


@dataclass(frozen=True)
class Names:
    ar: str
    en: str


MADD_NAMES = {
    RuleKind.MADD_TABEEI: Names("المد الطبيعي", "Natural madd"),
    RuleKind.MADD_MUTTASIL: Names("المد المتصل", "Muttasil madd"),
    RuleKind.MADD_MUNFASIL: Names("المد المنفصل", "Munfasil madd"),
    RuleKind.MADD_LAZIM: Names("المد اللازم", "Lazim madd"),
    RuleKind.MADD_ARID: Names("المد العارض للسكون", "'Arid madd"),
    RuleKind.MADD_LEEN: Names("مد اللين", "Leen madd"),
    RuleKind.MADD_BADAL: Names("مد البدل", "Badal madd"),
    RuleKind.MADD_SILAH: Names("مد الصلة", "Silah madd"),
    RuleKind.MADD_IWAD: Names("مد العوض", "'Iwad madd"),
}
GHUNNAH_NAMES = {
    RuleKind.GHUNNAH: Names("غنة النون والميم المشددتين", "Ghunnah of the doubled noon or meem"),
    RuleKind.IDGHAM: Names("الإدغام بغنة", "Idgham with ghunnah"),
    RuleKind.IKHFA: Names("الإخفاء", "Ikhfa"),
    RuleKind.IQLAB: Names("الإقلاب", "Iqlab"),
}

# Lengths each madd may take (domain notes; munfasil follows MoshafAttributes' choices).
_PERMITTED = {
    RuleKind.MADD_TABEEI: (2,),
    RuleKind.MADD_BADAL: (2,),
    RuleKind.MADD_IWAD: (2,),
    RuleKind.MADD_MUNFASIL: (2, 3, 4, 5),
    RuleKind.MADD_MUTTASIL: (4, 5),
    RuleKind.MADD_LAZIM: (6,),
    RuleKind.MADD_ARID: (2, 4, 6),
    RuleKind.MADD_LEEN: (2, 4, 6),
}
_SETTINGS = {
    "MonfaselMaddRule": "madd_monfasel_len",
    "MottaselMaddRule": "madd_mottasel_len",
    "MottaselMaddPauseRule": "max(madd_mottasel_waqf, madd_aared_len)",
    "AaredMaddRule": "madd_aared_len",
    "LeenMaddRule": "madd_alleen_len",
}


@dataclass(frozen=True)
class MaddTarget:
    group: int
    rule: RuleRef
    kind: RuleKind
    names: Names
    expected: int
    permitted: tuple[int, ...]
    # Harakat the script does not write: a leen's first count is the haraka before it.
    offset: int
    setting: str


@dataclass(frozen=True)
class GhunnahTarget:
    group: int
    kind: RuleKind
    names: Names


def _groups_in(reference: Reference, start: int, end: int) -> list[Group]:
    if end <= start:
        return []
    first = reference.group_at(start).index
    last = reference.group_at(end - 1).index
    return list(reference.groups[first : last + 1])


def _madd_group(reference: Reference, rule: RuleRef) -> Group | None:
    candidates = _groups_in(reference, rule.phoneme_start, rule.phoneme_end)
    table = phonetics.LEEN_TAG_SYMBOL if rule.name == "LeenMaddRule" else phonetics.MADD_TAG_SYMBOL
    symbol = table.get(rule.tag)
    for group in candidates:
        if group.core == symbol:
            return group
    if rule.name == "LeenMaddRule":
        return None
    return next((g for g in candidates if phonetics.is_madd_group(g)), None)


def _follows(reference: Reference, group: Group, core: str) -> bool:
    return group.index > 0 and reference.groups[group.index - 1].core == core


def _madd_kind(reference: Reference, rule: RuleRef, group: Group) -> tuple[RuleKind, Names]:
    char = reference.uthmani[rule.text_start] if rule.text_start < len(reference.uthmani) else ""
    silah = char in phonetics.SILAH_MARKS and _follows(reference, group, phonetics.PH.haa)
    if rule.name == "NormalMaddRule":
        if silah:
            return RuleKind.MADD_SILAH, Names("مد الصلة الصغرى", "Silah madd (sughra)")
        if _follows(reference, group, phonetics.PH.hamza):
            return RuleKind.MADD_BADAL, MADD_NAMES[RuleKind.MADD_BADAL]
        if _is_iwad(reference, rule, group):
            return RuleKind.MADD_IWAD, MADD_NAMES[RuleKind.MADD_IWAD]
        return RuleKind.MADD_TABEEI, MADD_NAMES[RuleKind.MADD_TABEEI]
    if rule.name == "MonfaselMaddRule":
        if silah:
            return RuleKind.MADD_SILAH, Names("مد الصلة الكبرى", "Silah madd (kubra)")
        return RuleKind.MADD_MUNFASIL, MADD_NAMES[RuleKind.MADD_MUNFASIL]
    if rule.name in ("MottaselMaddRule", "MottaselMaddPauseRule"):
        names = MADD_NAMES[RuleKind.MADD_MUTTASIL]
        if rule.name == "MottaselMaddPauseRule":
            names = Names("المد المتصل وقفا", "Muttasil madd at a stop")
        return RuleKind.MADD_MUTTASIL, names
    kind = {
        "LazemMaddRule": RuleKind.MADD_LAZIM,
        "AaredMaddRule": RuleKind.MADD_ARID,
        "LeenMaddRule": RuleKind.MADD_LEEN,
    }[rule.name]
    return kind, MADD_NAMES[kind]


def _is_iwad(reference: Reference, rule: RuleRef, group: Group) -> bool:
    """The alif that a tanween-fath becomes at the final stop."""
    if not reference.ends_with_waqf or rule.tag != "alif" or group.word_index != len(reference.words) - 1:
        return False
    word = reference.words[group.word_index]
    if not any(c in phonetics.TANWEEN_FATH for c in word.uthmani):
        return False
    later = reference.groups[group.index + 1 :]
    return not any(phonetics.is_madd_group(g) and g.word_index == group.word_index for g in later)


def _permitted(kind: RuleKind, rule: RuleRef) -> tuple[int, ...]:
    base: tuple[int, ...]
    if kind == RuleKind.MADD_SILAH:
        base = (2, 3, 4, 5) if rule.name == "MonfaselMaddRule" else (2,)
    elif rule.name == "MottaselMaddPauseRule":
        base = (4, 5, 6)
    else:
        base = _PERMITTED[kind]
    return tuple(sorted({*base, rule.golden_len}))


def madd_targets(reference: Reference) -> list[MaddTarget]:
    """One target per lengthened group; a specific rule wins over NormalMaddRule on the same group."""
    by_group: dict[int, MaddTarget] = {}
    for rule in reference.rules:
        if rule.name not in MADD_RULE_CLASSES or rule.golden_len <= 0:
            continue
        group = _madd_group(reference, rule)
        if group is None:
            continue
        existing = by_group.get(group.index)
        if existing is not None and (existing.rule.name != "NormalMaddRule" or rule.name == "NormalMaddRule"):
            continue
        kind, names = _madd_kind(reference, rule, group)
        by_group[group.index] = MaddTarget(
            group=group.index,
            rule=rule,
            kind=kind,
            names=names,
            expected=rule.golden_len,
            permitted=_permitted(kind, rule),
            offset=1 if rule.name == "LeenMaddRule" else 0,
            setting=_SETTINGS.get(rule.name, ""),
        )
    return [by_group[k] for k in sorted(by_group)]


def ghunnah_targets(reference: Reference, index: PhoneticIndex, lengthened: frozenset[int]) -> list[GhunnahTarget]:
    targets: list[GhunnahTarget] = []
    word_starts = {word.text_start for word in reference.words}
    for group in reference.groups:
        if group.index in lengthened or not phonetics.is_ghunnah_group(group):
            continue
        chars = index.chars_of(group.start, group.end)
        before_baa = (
            group.index + 1 < len(reference.groups)
            and reference.groups[group.index + 1].core == phonetics.PH.baa
            and not group.mark
        )
        if group.core == phonetics.PH.noon_mokhfah:
            kind, names = RuleKind.IKHFA, GHUNNAH_NAMES[RuleKind.IKHFA]
        elif group.core == phonetics.PH.meem_mokhfah or (group.core == phonetics.PH.meem and before_baa):
            # The small meem of iqlab follows the noon or tanween it turns (مِنۢ بَعْدِ).
            nearby = reference.uthmani[min(chars) : max(chars) + 2]
            if any(c in phonetics.IQLAB_MARKS for c in nearby):
                kind, names = RuleKind.IQLAB, GHUNNAH_NAMES[RuleKind.IQLAB]
            else:
                kind, names = RuleKind.IKHFA, Names("الإخفاء الشفوي", "Ikhfa shafawi")
        elif group.core in phonetics.IDGHAM_GHUNNAH_CORES or min(chars) in word_starts:
            # A shadda on a word's first letter is always a merge from the word before.
            kind, names = RuleKind.IDGHAM, GHUNNAH_NAMES[RuleKind.IDGHAM]
        else:
            kind, names = RuleKind.GHUNNAH, GHUNNAH_NAMES[RuleKind.GHUNNAH]
        targets.append(GhunnahTarget(group=group.index, kind=kind, names=names))
    return targets
