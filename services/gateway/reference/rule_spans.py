"""The phoneme range of a tajweed rule: exactly the symbols the rule is about, for every rule.

quran-transcript attaches each rule to one Uthmani character and gives that character's
phoneme span, which is not the rule's extent: a munfasil on the maddah sign (ٓ) covers one of
the two alifs it lengthens; a madd on an alif letter may start at the fatha before it; the
lazim of a disjoint letter (الٓمٓ) covers the letter's whole name (لَاااااا, مِۦۦۦۦۦۦم). Clients
highlight these ranges and the tajweed service measures them, so they are normalised here, one
way for every rule of a kind:

- a madd (every MaddRule class, leen included): the whole run of the lengthened symbol (ا or ـ
  for alif, ۦ, ۥ; ي, و for leen) that meets the mapped span, or touches it when none is inside;
- qalqalah: the echoing letter and its qalqalah mark (قڇ, or ققڇ after a shadda);
- a rule of another kind keeps the mapped span (none is emitted by quran-transcript 0.6.4).
"""

from __future__ import annotations

from services.tajweed.phonetics import LEEN_TAG_SYMBOL, MADD_TAG_SYMBOL, PH
from services.tajweed.rules import MADD_RULE_CLASSES

# The tajweed service's own tables (it measures these ranges), as sets of symbols per tag;
# an alif madd may be written ـ (the imala of 11:41).
MADD_RULES = MADD_RULE_CLASSES
MADD_SYMBOLS: dict[str, frozenset[str]] = {
    tag: frozenset({symbol, PH.alif_momala} if tag == "alif" else {symbol}) for tag, symbol in MADD_TAG_SYMBOL.items()
}
LEEN_SYMBOLS: dict[str, frozenset[str]] = {tag: frozenset({symbol}) for tag, symbol in LEEN_TAG_SYMBOL.items()}


def _run_around(phonemes: str, index: int, symbols: frozenset[str]) -> tuple[int, int]:
    start, end = index, index + 1
    while start > 0 and phonemes[start - 1] in symbols:
        start -= 1
    while end < len(phonemes) and phonemes[end] in symbols:
        end += 1
    return start, end


def _symbol_run(phonemes: str, start: int, end: int, symbols: frozenset[str]) -> tuple[int, int] | None:
    """The longest run of `symbols` meeting [start, end), else one that touches it."""
    runs = {_run_around(phonemes, i, symbols) for i in range(start, end) if phonemes[i] in symbols}
    if runs:
        return max(runs, key=lambda run: (run[1] - run[0], -run[0]))
    if end < len(phonemes) and phonemes[end] in symbols:
        return _run_around(phonemes, end, symbols)
    if start > 0 and phonemes[start - 1] in symbols:
        return _run_around(phonemes, start - 1, symbols)
    return None


def _qalqalah(phonemes: str, start: int, end: int) -> tuple[int, int] | None:
    mark = PH.qlqla
    window = range(max(start, 1), min(end + 1, len(phonemes)))
    at = next((i for i in window if phonemes[i] == mark), None)
    if at is None:
        return None
    letter = phonemes[at - 1]
    first = at - 1
    while first > 0 and phonemes[first - 1] == letter:
        first -= 1
    return first, at + 1


def rule_span(rule: str, tag: str, start: int, end: int, phonemes: str) -> tuple[int, int]:
    """[start, end) of the symbols `rule` (a quran-transcript rule class name) is about, from
    the span the phonetizer mapped it to. The mapped span is kept when the symbols are not found
    (a future rule class, or a script the table does not know)."""
    span: tuple[int, int] | None = None
    if rule in MADD_RULES:
        table = LEEN_SYMBOLS if rule == "LeenMaddRule" else MADD_SYMBOLS
        symbols = table.get(tag)
        if symbols is not None:
            span = _symbol_run(phonemes, start, end, symbols)
    elif rule == "Qalqalah":
        span = _qalqalah(phonemes, start, end)
    return span if span is not None else (start, end)
