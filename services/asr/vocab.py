"""The per-level vocabularies of the multi-level CTC model.

`vocab.json` maps level -> {token: id}. The model author builds it from quran-transcript's own
definitions: the phoneme level is `alphabet.phonetics` in declaration order, and each sifa level
is one `Literal` field of `SifaOutput`, its labels written as bracketed Arabic names. Id 0 is the
CTC blank `[PAD]` on every level. `Vocabulary.from_quran_transcript()` rebuilds the same table
(dev checkpoints are written with it); `from_checkpoint()` reads a checkpoint's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args, get_origin

if TYPE_CHECKING:
    from .checkpoint import CheckpointFiles

PAD_TOKEN = "[PAD]"
BLANK_ID = 0
PHONEMES = "phonemes"

# The Arabic names the author gives each sifa label in vocab.json (written there in brackets).
SIFA_LABEL_ARABIC: dict[str, str] = {
    "hams": "همس",
    "jahr": "جهر",
    "shadeed": "شديد",
    "between": "بين الشدة والرخاوة",
    "rikhw": "رخو",
    "mofakham": "مفخم",
    "moraqaq": "مرقق",
    "low_mofakham": "أدنى المفخم",
    "monfateh": "منفتح",
    "motbaq": "مطبق",
    "safeer": "صفير",
    "no_safeer": "لا صفير",
    "moqalqal": "مقلقل",
    "not_moqalqal": "لا قلقلة",
    "mokarar": "مكرر",
    "not_mokarar": "لا تكرار",
    "motafashie": "متفشي",
    "not_motafashie": "لا تفشي",
    "mostateel": "مستطيل",
    "not_mostateel": "لا إستطالة",
    "maghnoon": "مغن",
    "not_maghnoon": "لا غنة",
}
_ARABIC_TOKEN_TO_LABEL = {f"[{arabic}]": label for label, arabic in SIFA_LABEL_ARABIC.items()}


@dataclass(frozen=True)
class Vocabulary:
    """tokens[level][id] is the vocab.json token; labels[level][id] the English sifa label."""

    levels: tuple[str, ...]
    tokens: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_table(cls, table: Mapping[str, Mapping[str, int]]) -> Vocabulary:
        if PHONEMES not in table:
            raise ValueError("a vocabulary needs a 'phonemes' level")
        levels = (PHONEMES, *(level for level in table if level != PHONEMES))
        tokens: dict[str, tuple[str, ...]] = {}
        labels: dict[str, tuple[str, ...]] = {}
        for level in levels:
            by_id = sorted(table[level].items(), key=lambda item: item[1])
            if [i for _, i in by_id] != list(range(len(by_id))):
                raise ValueError(f"level {level!r}: ids are not 0..{len(by_id) - 1}")
            if by_id[BLANK_ID][0] != PAD_TOKEN:
                raise ValueError(f"level {level!r}: id {BLANK_ID} must be {PAD_TOKEN}")
            tokens[level] = tuple(token for token, _ in by_id)
            labels[level] = tuple(_ARABIC_TOKEN_TO_LABEL.get(t, t) for t in tokens[level])
        return cls(levels=levels, tokens=tokens, labels=labels)

    @classmethod
    def from_checkpoint(cls, files: CheckpointFiles) -> Vocabulary:
        return cls.from_table(files.vocab)

    @classmethod
    def from_quran_transcript(cls) -> Vocabulary:
        return cls.from_table(build_vocab_table())

    @property
    def sifa_levels(self) -> tuple[str, ...]:
        return self.levels[1:]

    def size(self, level: str) -> int:
        return len(self.tokens[level])

    def to_table(self) -> dict[str, dict[str, int]]:
        return {level: {t: i for i, t in enumerate(self.tokens[level])} for level in self.levels}


def build_vocab_table() -> dict[str, dict[str, int]]:
    """level -> {token: id}, built the way the model author builds vocab.json."""
    from dataclasses import asdict

    from quran_transcript import SifaOutput
    from quran_transcript import alphabet as alph

    table: dict[str, dict[str, int]] = {PHONEMES: {PAD_TOKEN: BLANK_ID}}
    for phoneme in asdict(alph.phonetics).values():
        table[PHONEMES][phoneme] = len(table[PHONEMES])
    for field_name, info in SifaOutput.model_fields.items():
        if get_origin(info.annotation) is not Literal:
            continue
        level_table = {PAD_TOKEN: BLANK_ID}
        for label in get_args(info.annotation):
            level_table[f"[{SIFA_LABEL_ARABIC[label]}]"] = len(level_table)
        table[field_name] = level_table
    return table
