"""Reference phoneme groups matched to the groups the model decoded.

The match is quran-transcript's own (`align_phonemes_groups`: Levenshtein opcodes over
the first letter of each group, the core), the one explain_error uses, so a madd the
validators measure and an error explain_error reports refer to the same decoded group.
A reference group matched by an `equal` or `replace` opcode has a decoded counterpart;
a deleted one has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from quran_transcript import chunck_phonemes
from quran_transcript.phonetics.error_explainer import align_phonemes_groups

from services.tajweed.model import Decode, DecodedToken, Reference, SifaProb


@dataclass(frozen=True)
class DecodedGroup:
    index: int
    phonemes: str
    start: int
    end: int
    tokens: tuple[DecodedToken, ...]
    sifat: dict[str, SifaProb]

    @property
    def core(self) -> str:
        return self.phonemes[0]

    def count_of(self, symbol: str) -> int:
        return self.phonemes.count(symbol)

    def mean_prob(self) -> float | None:
        if not self.tokens:
            return None
        return sum(t.prob for t in self.tokens) / len(self.tokens)

    def time_span(self, frame_s: float) -> tuple[float, float] | None:
        if not self.tokens:
            return None
        return self.tokens[0].start_frame * frame_s, self.tokens[-1].end_frame * frame_s


@dataclass(frozen=True)
class GroupMatch:
    decoded: tuple[DecodedGroup, ...]
    # Reference group index -> decoded group index, for equal/replace pairs.
    ref_to_decoded: dict[int, int]
    # Reference group index -> decoded groups inserted before it (len(groups): at the end).
    inserted_before: dict[int, tuple[int, ...]]

    def of(self, ref_group: int) -> DecodedGroup | None:
        index = self.ref_to_decoded.get(ref_group)
        return None if index is None else self.decoded[index]


def decoded_groups(decode: Decode) -> tuple[DecodedGroup, ...]:
    groups: list[DecodedGroup] = []
    position = 0
    for index, chunk in enumerate(chunck_phonemes(decode.phonemes) if decode.phonemes else []):
        end = position + len(chunk)
        tokens = decode.tokens[position:end] if decode.tokens else ()
        sifat = decode.sifat[index] if index < len(decode.sifat) else {}
        groups.append(DecodedGroup(index, chunk, position, end, tuple(tokens), sifat))
        position = end
    return tuple(groups)


def match(reference: Reference, decode: Decode) -> GroupMatch:
    decoded = decoded_groups(decode)
    ref_chunks = [g.phonemes for g in reference.groups]
    ref_to_decoded: dict[int, int] = {}
    inserted: dict[int, list[int]] = {}
    for op in align_phonemes_groups(ref_chunks, [g.phonemes for g in decoded]):
        if op.op_type in ("equal", "replace"):
            ref_to_decoded[op.ref_idx] = op.pred_idx
        elif op.op_type == "insert":
            inserted.setdefault(op.ref_idx, []).append(op.pred_idx)
    return GroupMatch(
        decoded=decoded,
        ref_to_decoded=ref_to_decoded,
        inserted_before={k: tuple(v) for k, v in inserted.items()},
    )
