"""What the real model heard on test.wav (an expert's correct recitation, from the author's own
test fixture) through the content check, the tajweed service's symbol evidence and fusion: a
correct recitation must come out correct. The weights are not here; their output is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.common.pb import common_pb2, gateway_pb2, tajweed_pb2
from services.common.sifat import SIFA_LEVELS
from services.gateway.fusion import FusionInput, fuse
from services.gateway.reference import builder, moshaf, targets
from services.gateway.verification import ContentVerifier
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.servicer import TajweedServicer
from tests.conftest import FIXTURES_DIR


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text())
    return data


@pytest.fixture(scope="module")
def reference(fixture: dict[str, Any]) -> common_pb2.Reference:
    ref = fixture["reference"]
    values = moshaf.to_dict(common_pb2.MoshafAttributes(**ref["moshaf"]))
    return builder.build_reference(
        targets.word_range_target(ref["sura"], ref["aya"], ref["imlaey_word_start"], ref["imlaey_word_window"]), values
    )


def _decode(fixture: dict[str, Any]) -> common_pb2.Decode:
    predicted = fixture["predicted"]
    decode = common_pb2.Decode(phonemes=predicted["phonemes"])
    for phoneme, token_id, prob in zip(predicted["phonemes"], predicted["ids"], predicted["probs"], strict=True):
        decode.tokens.add(phoneme=phoneme, id=token_id, prob=prob)
    for group in predicted["sifat"]:
        sifat = decode.sifat.add(phonemes_group=group["phonemes_group"])
        for level in SIFA_LEVELS:
            getattr(sifat, level).CopyFrom(common_pb2.SifaValue(label=group[level]["text"], prob=group[level]["prob"]))
    return decode


async def test_the_real_models_output_on_a_correct_recitation_is_judged_correct(
    fixture: dict[str, Any], reference: common_pb2.Reference
) -> None:
    decode = _decode(fixture)
    content = ContentVerifier().check(decode.phonemes, reference)
    assert content.status == gateway_pb2.CONTENT_STATUS_MATCH and content.similarity == 1.0

    servicer = TajweedServicer(TajweedValidator(TajweedConfig.from_env({})))
    request = tajweed_pb2.ValidateRequest(
        reference=reference,
        decode=decode,
        audio_duration_s=8.77,
        options=tajweed_pb2.ValidateOptions(include_correct=True),
    )
    findings = list((await servicer.Validate(request, None)).findings)
    judged = [f for f in findings if f.verdict != common_pb2.VERDICT_UNCERTAIN]
    assert judged, "no rule was judged from the decoded symbols"
    problems = [(f.source, f.rule_name, f.message_en) for f in judged if f.verdict != common_pb2.VERDICT_CORRECT]
    assert problems == []
    # Every madd of the passage, counted from the decoded symbols, has its expected length.
    madd = [f for f in findings if f.source == "madd"]
    assert len(madd) == 5
    assert all(f.measured.symbol_count in f.expected.harakat for f in madd)

    fused = fuse(
        FusionInput(
            reference=reference,
            decode=decode,
            alignment=None,
            findings=findings,
            content=content,
            rules_ran=True,
            include_correct=False,
        )
    )
    assert [w.verdict for w in fused.words] == [gateway_pb2.WORD_VERDICT_CORRECT] * len(reference.words)
    assert fused.errors == []
    assert fused.scores.accuracy == 100
