"""Inconsistent input is an InvalidArgument that names the problem."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, tajweed_pb2
from services.tajweed.config import TajweedConfig
from services.tajweed.convert import request_from_proto
from tests.tajweed import synth


def _valid() -> tajweed_pb2.ValidateRequest:
    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    return synth.request(
        ref, timing, synth.decode(ref.phonemes), envelope=synth.energy(synth.envelope(timing), 0.01)
    )


def _shift_token(req: tajweed_pb2.ValidateRequest) -> None:
    req.alignment.tokens[3].span.start_s = req.alignment.tokens[1].span.start_s


def _retime_beyond(req: tajweed_pb2.ValidateRequest) -> None:
    req.alignment.tokens[-1].span.end_s = req.audio_duration_s + 1.0


def _wrong_phoneme(req: tajweed_pb2.ValidateRequest) -> None:
    req.alignment.tokens[0].phoneme = "ك"


def _drop_token(req: tajweed_pb2.ValidateRequest) -> None:
    del req.alignment.tokens[-1]


def _regroup(req: tajweed_pb2.ValidateRequest) -> None:
    req.reference.groups[1].phoneme_start += 1


def _foreign_reference(req: tajweed_pb2.ValidateRequest) -> None:
    # Consistent in itself, but not what its Uthmani text phonetizes to.
    req.reference.phonemes = "ك" + req.reference.phonemes[1:]
    req.reference.groups[0].phonemes = "ك" + req.reference.groups[0].phonemes[1:]
    req.alignment.tokens[0].phoneme = "ك"


def _bad_decode_tokens(req: tajweed_pb2.ValidateRequest) -> None:
    req.decode.tokens[0].phoneme = "ب"


def _bad_sifat(req: tajweed_pb2.ValidateRequest) -> None:
    del req.decode.sifat[-1]


def _bad_symbols(req: tajweed_pb2.ValidateRequest) -> None:
    req.decode.phonemes = req.decode.phonemes + "x"
    req.decode.ClearField("tokens")


def _bad_energy(req: tajweed_pb2.ValidateRequest) -> None:
    req.energy.db.shape[:] = [5]


def _bad_hop(req: tajweed_pb2.ValidateRequest) -> None:
    req.energy.hop_s = 0


def _unknown_validator(req: tajweed_pb2.ValidateRequest) -> None:
    req.options.validators.append("tarteel")


def _bad_tolerance(req: tajweed_pb2.ValidateRequest) -> None:
    req.options.madd_tolerance_harakat = -1


def _no_reference(req: tajweed_pb2.ValidateRequest) -> None:
    req.ClearField("reference")


CASES: list[tuple[Callable[[tajweed_pb2.ValidateRequest], None], str]] = [
    (_no_reference, "reference is missing"),
    (_drop_token, "alignment has 19 tokens for 20 reference phonemes"),
    (_wrong_phoneme, "does not belong to this reference"),
    (_shift_token, "spans must be in reference order"),
    (_retime_beyond, "beyond the audio"),
    (_regroup, "must tile"),
    (_foreign_reference, "rebuild the reference"),
    (_bad_decode_tokens, "decode.tokens spell"),
    (_bad_sifat, "decode.sifat has 9 entries for 10"),
    (_bad_symbols, "outside the phonetic alphabet"),
    (_bad_energy, "energy.db"),
    (_bad_hop, "energy.hop_s"),
    (_unknown_validator, "unknown ['tarteel']"),
    (_bad_tolerance, "madd_tolerance_harakat"),
]


@pytest.mark.parametrize(("breaks", "message"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_inconsistent_input_is_rejected(breaks: Callable[[tajweed_pb2.ValidateRequest], None], message: str) -> None:
    req = _valid()
    synth.validate(req)  # valid as built
    breaks(req)
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        synth.validate(req)


def test_partial_requests_are_valid() -> None:
    ref = synth.reference(112, 1)
    config = TajweedConfig()
    bare = request_from_proto(tajweed_pb2.ValidateRequest(reference=ref), config)
    assert bare.alignment is None and bare.decode is None and bare.energy is None and bare.is_complete is None
    assert synth.validate(tajweed_pb2.ValidateRequest(reference=ref)).findings == ()
    empty = tajweed_pb2.ValidateRequest(
        reference=ref,
        alignment=common_pb2.Alignment(),
        energy=tajweed_pb2.EnergyEnvelope(hop_s=0.01),
    )
    parsed = request_from_proto(empty, config)
    assert parsed.alignment is None and parsed.energy is None
    # An empty decode is a decode: nothing was heard.
    heard_nothing = synth.request(ref, None, common_pb2.Decode(), validators=["explain_error"], include_correct=False)
    assert all(f.verdict.value == "MISSING" for f in synth.validate(heard_nothing).findings)
    assert np.isfinite(synth.validate(heard_nothing).tempo.haraka_s)
