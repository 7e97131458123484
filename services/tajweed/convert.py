"""ValidateRequest -> core input, checked; core result -> ValidateResponse.

Every inconsistency is an InvalidArgument naming the field and the problem: groups that do
not tile the reference phonemes, alignment tokens that are not the reference's phonemes
one for one, spans out of order or beyond the audio, decoded tokens or sifat that do not
match the decoded phonemes, an unknown validator name.

Alignment.groups and Alignment.words are not read: the tokens are the source of truth and
group/word times are derived from them (timeline.py).
"""

from __future__ import annotations

import math

from quran_transcript import chunck_phonemes

from services.common import tensors
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, tajweed_pb2
from services.common.sifat import SIFA_LEVELS
from services.tajweed.config import TajweedConfig
from services.tajweed.model import (
    VALIDATORS,
    AlignedToken,
    Alignment,
    Decode,
    DecodedToken,
    Energy,
    Finding,
    Group,
    Options,
    Reference,
    RuleRef,
    SifaProb,
    ValidateInput,
    ValidateResult,
    Word,
)
from services.tajweed.phonetics import ALPHABET

# Seconds a span may run past the audio's end (rounding to a frame).
_END_SLACK_FRAMES = 1.0


def _check_symbols(name: str, phonemes: str) -> None:
    unknown = sorted({c for c in phonemes if c not in ALPHABET})
    if unknown:
        raise InvalidArgument(f"{name} contains symbols outside the phonetic alphabet: {unknown}")


def _finite(name: str, *values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument(f"{name} must be finite")


def _surah(reference: common_pb2.Reference) -> int:
    kind = reference.target.WhichOneof("kind")
    if kind == "ayah":
        return reference.target.ayah.surah
    if kind == "words":
        return reference.target.words.surah
    if kind == "ayah_range":
        return reference.target.ayah_range.surah
    return reference.words[0].surah if reference.words else 0


def reference_from_proto(proto: common_pb2.Reference) -> Reference:
    phonemes = proto.phonemes
    if not phonemes:
        raise InvalidArgument("reference is missing: set reference (with its phonemes, groups and words)")
    _check_symbols("reference.phonemes", phonemes)
    uthmani = proto.uthmani
    if not uthmani:
        raise InvalidArgument("reference.uthmani is empty")
    if not proto.words:
        raise InvalidArgument("reference.words is empty")
    words: list[Word] = []
    for i, w in enumerate(proto.words):
        span = w.uthmani_span
        if not 0 <= span.start <= span.end <= len(uthmani):
            raise InvalidArgument(
                f"reference.words[{i}].uthmani_span [{span.start}, {span.end}) is outside reference.uthmani "
                f"({len(uthmani)} characters)"
            )
        if not 0 <= w.phoneme_start <= w.phoneme_end <= len(phonemes):
            raise InvalidArgument(
                f"reference.words[{i}] phoneme range [{w.phoneme_start}, {w.phoneme_end}) is outside the "
                f"{len(phonemes)} reference phonemes"
            )
        words.append(
            Word(i, w.uthmani, w.surah, w.ayah, w.word_in_ayah, span.start, span.end, w.phoneme_start, w.phoneme_end)
        )
    if not proto.groups:
        raise InvalidArgument("reference.groups is empty")
    groups: list[Group] = []
    position = 0
    for i, g in enumerate(proto.groups):
        if g.phoneme_start != position or g.phoneme_end <= g.phoneme_start:
            raise InvalidArgument(
                f"reference.groups[{i}] covers [{g.phoneme_start}, {g.phoneme_end}) but the groups must tile "
                f"the phonemes: the next group starts at {position}"
            )
        if phonemes[g.phoneme_start : g.phoneme_end] != g.phonemes:
            raise InvalidArgument(
                f"reference.groups[{i}].phonemes {g.phonemes!r} differ from the reference phonemes at "
                f"[{g.phoneme_start}, {g.phoneme_end}): {phonemes[g.phoneme_start:g.phoneme_end]!r}"
            )
        if not 0 <= g.word_index < len(words):
            raise InvalidArgument(
                f"reference.groups[{i}].word_index {g.word_index} is not one of the {len(words)} words"
            )
        sifat = {level: getattr(g.sifat, level).label for level in SIFA_LEVELS if getattr(g.sifat, level).label}
        groups.append(Group(i, g.phonemes, g.phoneme_start, g.phoneme_end, g.word_index, sifat))
        position = g.phoneme_end
    if position != len(phonemes):
        raise InvalidArgument(f"reference.groups end at phoneme {position} of {len(phonemes)}")
    rules: list[RuleRef] = []
    for i, r in enumerate(proto.rules):
        if not 0 <= r.phoneme_start <= r.phoneme_end <= len(phonemes):
            raise InvalidArgument(
                f"reference.rules[{i}] ({r.rule}) phoneme range [{r.phoneme_start}, {r.phoneme_end}) is outside "
                f"the {len(phonemes)} reference phonemes"
            )
        if not 0 <= r.uthmani_span.start <= r.uthmani_span.end <= len(uthmani):
            raise InvalidArgument(f"reference.rules[{i}] ({r.rule}) uthmani_span is outside reference.uthmani")
        if not 0 <= r.word_index < len(words):
            raise InvalidArgument(f"reference.rules[{i}].word_index {r.word_index} is not one of the words")
        rules.append(
            RuleRef(
                r.rule, r.name_ar, r.name_en, r.golden_len, r.tag, r.phoneme_start, r.phoneme_end,
                r.uthmani_span.start, r.uthmani_span.end, r.word_index,
            )
        )
    moshaf = {
        f.name: getattr(proto.moshaf, f.name)
        for f in common_pb2.MoshafAttributes.DESCRIPTOR.fields
        if proto.moshaf.HasField(f.name)
    }
    return Reference(
        uthmani=uthmani,
        phonemes=phonemes,
        groups=tuple(groups),
        words=tuple(words),
        rules=tuple(rules),
        moshaf=moshaf,
        surah=_surah(proto),
        ends_with_waqf=proto.ends_with_waqf,
        phonetizer_version=proto.phonetizer_version,
    )


def alignment_from_proto(
    proto: common_pb2.Alignment, phonemes: str, audio_duration_s: float, default_frame_s: float
) -> Alignment | None:
    if not proto.tokens:
        return None
    frame_s = proto.frame_duration_s if proto.frame_duration_s > 0 else default_frame_s
    _finite("alignment.frame_duration_s", frame_s)
    if len(proto.tokens) != len(phonemes):
        raise InvalidArgument(
            f"alignment has {len(proto.tokens)} tokens for {len(phonemes)} reference phonemes: it must hold one "
            "token per reference phoneme"
        )
    bound = audio_duration_s if audio_duration_s > 0 else proto.num_frames * frame_s
    tokens: list[AlignedToken] = []
    previous_end = 0.0
    for i, t in enumerate(proto.tokens):
        if t.phoneme and t.phoneme != phonemes[i]:
            raise InvalidArgument(
                f"alignment.tokens[{i}] is {t.phoneme!r} but reference phoneme {i} is {phonemes[i]!r}: the "
                "alignment does not belong to this reference"
            )
        if t.phoneme_index != i:
            raise InvalidArgument(f"alignment.tokens[{i}].phoneme_index is {t.phoneme_index}, expected {i}")
        start, end = t.span.start_s, t.span.end_s
        _finite(f"alignment.tokens[{i}].span", start, end)
        if start < 0 or end < start:
            raise InvalidArgument(f"alignment.tokens[{i}] span [{start}, {end}) s is not a valid interval")
        if start < previous_end - 1e-6:
            raise InvalidArgument(
                f"alignment.tokens[{i}] starts at {start:.3f} s, before token {i - 1} ends ({previous_end:.3f} s): "
                "spans must be in reference order"
            )
        if bound > 0 and end > bound + _END_SLACK_FRAMES * frame_s:
            raise InvalidArgument(
                f"alignment.tokens[{i}] ends at {end:.3f} s, beyond the audio ({bound:.3f} s)"
            )
        tokens.append(AlignedToken(t.phoneme or phonemes[i], start, end, t.llr, t.gop_posterior, t.flagged))
        previous_end = end
    return Alignment(tokens=tuple(tokens), frame_s=frame_s)


def decode_from_proto(proto: common_pb2.Decode) -> Decode:
    phonemes = proto.phonemes
    _check_symbols("decode.phonemes", phonemes)
    tokens: list[DecodedToken] = []
    if proto.tokens:
        joined = "".join(t.phoneme for t in proto.tokens)
        if joined != phonemes:
            raise InvalidArgument(
                f"decode.tokens spell {joined!r}, not decode.phonemes {phonemes!r}: one token per decoded phoneme"
            )
        previous_end = 0
        for i, t in enumerate(proto.tokens):
            if t.start_frame < previous_end or t.end_frame < t.start_frame:
                raise InvalidArgument(
                    f"decode.tokens[{i}] frames [{t.start_frame}, {t.end_frame}) are out of order"
                )
            previous_end = t.end_frame
            tokens.append(DecodedToken(t.phoneme, t.prob, t.start_frame, t.end_frame))
    groups = chunck_phonemes(phonemes) if phonemes else []
    if proto.sifat and len(proto.sifat) != len(groups):
        raise InvalidArgument(
            f"decode.sifat has {len(proto.sifat)} entries for {len(groups)} decoded phoneme groups: one per group"
        )
    sifat = tuple(
        {
            level: SifaProb(getattr(s, level).label, getattr(s, level).prob)
            for level in SIFA_LEVELS
            if getattr(s, level).label
        }
        for s in proto.sifat
    )
    for i, phase in enumerate(proto.phase_phonemes):
        _check_symbols(f"decode.phase_phonemes[{i}]", phase)
    return Decode(phonemes=phonemes, tokens=tuple(tokens), sifat=sifat, phase_phonemes=tuple(proto.phase_phonemes))


def energy_from_proto(proto: tajweed_pb2.EnergyEnvelope) -> Energy | None:
    if not proto.db.data and not proto.db.shape:
        return None
    if not (math.isfinite(proto.hop_s) and proto.hop_s > 0):
        raise InvalidArgument(f"energy.hop_s must be a positive number, got {proto.hop_s}")
    db = tensors.from_proto(proto.db, name="energy.db", ndim=1)
    return Energy(db=db, hop_s=proto.hop_s)


def options_from_proto(proto: tajweed_pb2.ValidateOptions) -> Options:
    unknown = sorted(set(proto.validators) - set(VALIDATORS))
    if unknown:
        raise InvalidArgument(f"options.validators: unknown {unknown}; valid: {', '.join(VALIDATORS)}")
    tolerance: float | None = None
    if proto.HasField("madd_tolerance_harakat"):
        tolerance = proto.madd_tolerance_harakat
        if not (math.isfinite(tolerance) and 0 < tolerance <= 3):
            raise InvalidArgument(f"options.madd_tolerance_harakat must be in (0, 3], got {tolerance}")
    return Options(
        validators=frozenset(proto.validators) or frozenset(VALIDATORS),
        madd_tolerance_harakat=tolerance,
        include_correct=proto.include_correct,
    )


def request_from_proto(request: tajweed_pb2.ValidateRequest, config: TajweedConfig) -> ValidateInput:
    if not request.HasField("reference"):
        raise InvalidArgument("reference is missing: set reference (with its phonemes, groups and words)")
    reference = reference_from_proto(request.reference)
    duration = request.audio_duration_s
    if not (math.isfinite(duration) and duration >= 0):
        raise InvalidArgument(f"audio_duration_s must be >= 0, got {duration}")
    alignment = None
    if request.HasField("alignment"):
        alignment = alignment_from_proto(request.alignment, reference.phonemes, duration, config.frame_s)
    return ValidateInput(
        reference=reference,
        alignment=alignment,
        decode=decode_from_proto(request.decode) if request.HasField("decode") else None,
        energy=energy_from_proto(request.energy) if request.HasField("energy") else None,
        is_complete=request.is_complete if request.HasField("is_complete") else None,
        audio_duration_s=duration,
        options=options_from_proto(request.options),
    )


def finding_to_proto(finding: Finding) -> common_pb2.Finding:
    m = finding.measured
    measured = common_pb2.Measurement(text=m.text)
    for name in ("duration_harakat", "symbol_count", "duration_s", "sifa_prob", "energy_ratio", "duration_sd"):
        value = getattr(m, name)
        if value is not None:
            setattr(measured, name, float(value))
    for name in ("phases_heard", "phases"):
        count = getattr(m, name)
        if count is not None:
            setattr(measured, name, int(count))
    proto = common_pb2.Finding(
        rule=f"RULE_{finding.rule.value}",
        rule_name=finding.rule_name,
        word_index=finding.word_index,
        uthmani_span=common_pb2.TextSpan(start=finding.text_span[0], end=finding.text_span[1]),
        expected=common_pb2.Expectation(harakat=list(finding.expected_harakat), text=finding.expected_text),
        measured=measured,
        verdict=f"VERDICT_{finding.verdict.value}",
        confidence=min(max(finding.confidence, 0.0), 1.0),
        message_ar=finding.message_ar,
        message_en=finding.message_en,
        phoneme_start=finding.phoneme_start,
        phoneme_end=finding.phoneme_end,
        expected_phonemes=finding.expected_phonemes,
        heard_phonemes=finding.heard_phonemes,
        source=finding.source,
    )
    if finding.time_span is not None:
        proto.time_span.CopyFrom(common_pb2.TimeSpan(start_s=finding.time_span[0], end_s=finding.time_span[1]))
    return proto


def response_to_proto(result: ValidateResult) -> tajweed_pb2.ValidateResponse:
    tempo = result.tempo
    return tajweed_pb2.ValidateResponse(
        findings=[finding_to_proto(f) for f in result.findings],
        tempo=common_pb2.Tempo(
            haraka_s=tempo.haraka_s,
            samples=tempo.samples,
            from_prior=tempo.from_prior,
            consonant_s=tempo.consonant_s,
        ),
        timings=[common_pb2.StageTiming(stage=k, duration_ms=v) for k, v in result.timings_ms.items()],
        calibration=tajweed_pb2.TajweedCalibration(
            source=result.calibration.source,
            digest=result.calibration.digest,
            defaults=result.calibration.defaults,
        ),
    )
