"""The content check and the tajweed stage on decodes like a trained model's (see INTRO): random
weights decode almost nothing, which would flatter the two stages that read the decode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from bench.common import fmt_ms, median_ms, table
from bench.wire import Traffic
from services.common.pb import common_pb2, gateway_pb2, tajweed_pb2

if TYPE_CHECKING:
    from services.gateway.verification import ContentVerifier
    from services.tajweed.core import TajweedValidator

REPEATS = 5
LEARNER = "1 phoneme in 20 changed"
# The 28 letters, in the model's vocabulary order: a changed phoneme is the next letter.
LETTERS = "ءبتثجحخدذرزسشصضطظعغفقكلمنهوي"


@dataclass(frozen=True)
class Row:
    clip: str
    decode: str
    verification_ms: float
    content: str
    tajweed_ms: float


def learner(phonemes: str, every: int = 20) -> str:
    """In every stretch of `every` phonemes, its first letter replaced by the next letter."""
    out = list(phonemes)
    for start in range(0, len(out), every):
        at = next((i for i in range(start, min(start + every, len(out))) if out[i] in LETTERS), None)
        if at is not None:
            out[at] = LETTERS[(LETTERS.index(out[at]) + 1) % len(LETTERS)]
    return "".join(out)


def fitted(text: str, length: int) -> str:
    return (text * (length // max(len(text), 1) + 1))[:length]


def _one(
    verifier: ContentVerifier,
    validator: TajweedValidator,
    clip: str,
    label: str,
    decoded: str,
    reference: common_pb2.Reference,
    validate: Message,
) -> Row:
    from services.tajweed.convert import request_from_proto, response_to_proto

    check = verifier.check(decoded, reference)
    request = tajweed_pb2.ValidateRequest()
    request.MergeFromString(validate.SerializeToString())
    request.decode.CopyFrom(common_pb2.Decode(phonemes=decoded))
    content = {gateway_pb2.CONTENT_STATUS_MATCH: "match", gateway_pb2.CONTENT_STATUS_MISMATCH: "mismatch"}.get(
        check.status, "unknown"
    )
    return Row(
        clip,
        label,
        median_ms(lambda: verifier.check(decoded, reference), REPEATS),
        f"{content} ({check.similarity:.2f})",
        median_ms(
            lambda: response_to_proto(validator.validate(request_from_proto(request, validator.config))), REPEATS
        ),
    )


def measure(per_clip: dict[str, Traffic]) -> list[Row]:
    from services.gateway.verification import ContentVerifier
    from services.tajweed.config import TajweedConfig
    from services.tajweed.core import TajweedValidator
    from services.tajweed.warmup import warm_up

    verifier = ContentVerifier()
    verifier.finder.load()
    warm_up()
    validator = TajweedValidator(TajweedConfig.from_env({}))
    names = list(per_clip)
    rows = []
    for index, name in enumerate(names):
        align = per_clip[name].message("AlignRequest")
        validate = per_clip[name].message("ValidateRequest")
        if align is None or validate is None:
            continue
        reference: common_pb2.Reference = align.reference  # type: ignore[attr-defined]
        other_align = per_clip[names[(index + 1) % len(names)]].message("AlignRequest")
        other = other_align.reference.phonemes if other_align is not None else ""  # type: ignore[attr-defined]
        decodes = {
            "the passage itself": reference.phonemes,
            LEARNER: learner(reference.phonemes),
        }
        if other and other != reference.phonemes:
            decodes["another passage (mismatch)"] = fitted(other, len(reference.phonemes))
        for label, decoded in decodes.items():
            rows.append(_one(verifier, validator, name, label, decoded, reference, validate))
    return rows


INTRO = (
    "Random weights decode almost nothing (a few phonemes per clip), which flatters the stages that "
    "read the decode. Here the content check and tajweed run again, in the benchmark process, on the "
    "requests the mesh exchanged for each clip, with the decode replaced by the passage itself, by "
    "the passage with one phoneme in twenty changed (a learner: the model's phoneme error rate on "
    "learners is about 6 %), and by another passage of the same length (a mismatch: the content "
    f"check then searches what was recited, and by default the rules are skipped). Median of {REPEATS}."
)


def render(rows: list[Row]) -> list[str]:
    cells = [[r.clip, r.decode, fmt_ms(r.verification_ms), r.content, fmt_ms(r.tajweed_ms)] for r in rows]
    return [INTRO, "", *table(["clip", "decode", "content check ms", "content (similarity)", "tajweed ms"], cells)]
