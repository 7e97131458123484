"""Protobuf <-> the prosody stage's plain objects (no grpc here)."""

from __future__ import annotations

import numpy as np

from services.common import tensors
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, prosody_pb2
from services.prosody.compare import Comparison
from services.prosody.features import AudioFeatures, Group, Madd, Phone, Recitation, Timing, Word
from services.prosody.maqam import MaqamEstimate
from services.prosody.melody import Melody
from services.prosody.pitch import VOICING_THRESHOLD, PitchTrack
from services.prosody.rhythm import Rhythm
from services.prosody.voice import VoiceQuality


def features_to_proto(f: AudioFeatures) -> prosody_pb2.ProsodyFeatures:
    out = prosody_pb2.ProsodyFeatures(
        pitch=prosody_pb2.PitchContour(
            hop_s=f.pitch.hop_s,
            f0_hz=tensors.to_proto(f.pitch.f0_hz, "float32"),
            confidence=tensors.to_proto(f.pitch.confidence, "float32"),
            median_hz=f.pitch.median_hz,
        ),
        energy_db=tensors.to_proto(f.energy_db, "float32"),
        voice_quality=prosody_pb2.VoiceQuality(
            jitter_local=f.voice.jitter_local,
            shimmer_local_db=f.voice.shimmer_local_db,
            hnr_db=f.voice.hnr_db,
            slope_0_500=f.voice.slope_0_500,
            slope_500_1500=f.voice.slope_500_1500,
            voiced_frames=f.voice.voiced_frames,
        ),
        # float16 halves the largest part of a cached reference; DTW does not need more.
        acoustic=tensors.to_proto(f.mel, "float16"),
        duration_s=f.duration_s,
    )
    if f.maqam is not None:
        out.maqam.CopyFrom(maqam_to_proto(f.maqam))
    return out


def maqam_to_proto(m: MaqamEstimate) -> prosody_pb2.MaqamEstimate:
    return prosody_pb2.MaqamEstimate(name=m.name, confidence=m.confidence, tonic_hz=m.tonic_hz, scores=m.scores)


def _maqam(m: prosody_pb2.MaqamEstimate) -> MaqamEstimate:
    return MaqamEstimate(m.name, m.confidence, m.tonic_hz, dict(m.scores))


def features_from_proto(p: prosody_pb2.ProsodyFeatures, *, name: str) -> AudioFeatures:
    """Raises InvalidArgument naming the side (`name`) when the features are missing or inconsistent."""
    if not p.HasField("pitch") or not p.pitch.f0_hz.shape:
        raise InvalidArgument(f"{name}.features.pitch is missing")
    if p.pitch.hop_s <= 0:
        raise InvalidArgument(f"{name}.features.pitch.hop_s must be > 0, got {p.pitch.hop_s}")
    f0 = tensors.from_proto(p.pitch.f0_hz, name=f"{name}.features.pitch.f0_hz", ndim=1).astype(np.float64)
    conf = tensors.from_proto(p.pitch.confidence, name=f"{name}.features.pitch.confidence", ndim=1).astype(np.float64)
    energy = tensors.from_proto(p.energy_db, name=f"{name}.features.energy_db", ndim=1)
    mel = tensors.from_proto(p.acoustic, name=f"{name}.features.acoustic", ndim=2).astype(np.float64)
    if not (len(f0) == len(conf) == len(energy) == len(mel)):
        raise InvalidArgument(
            f"{name}.features: pitch ({len(f0)}), confidence ({len(conf)}), energy ({len(energy)}) and "
            f"acoustic ({len(mel)}) frames must agree"
        )
    if len(f0) == 0 or not np.isfinite(f0).all() or (f0 < 0).any():
        raise InvalidArgument(f"{name}.features.pitch.f0_hz must be non-empty, finite and >= 0")
    voiced = (f0 > 0) & (conf >= VOICING_THRESHOLD)
    v = p.voice_quality
    return AudioFeatures(
        pitch=PitchTrack(np.where(voiced, f0, 0.0), voiced, conf, p.pitch.hop_s),
        energy_db=energy,
        voice=VoiceQuality(
            v.jitter_local, v.shimmer_local_db, v.hnr_db, v.slope_0_500, v.slope_500_1500, v.voiced_frames
        ),
        maqam=_maqam(p.maqam) if p.HasField("maqam") else None,
        mel=mel,
        duration_s=p.duration_s,
    )


def _is_madd(rule: common_pb2.ReferenceRule) -> bool:
    return "madd" in rule.rule.lower() and rule.correctness_type == "count"


def timing_from_proto(reference: common_pb2.Reference, alignment: common_pb2.Alignment) -> Timing | None:
    """The alignment's words, phonemes and groups with times, and the span of each madd rule. None
    when there is no aligned word."""
    if not alignment.words:
        return None
    tokens = alignment.tokens
    by_index: dict[int, tuple[float, float]] = {t.phoneme_index: (t.span.start_s, t.span.end_s) for t in tokens}
    madds = []
    for rule in reference.rules:
        if not _is_madd(rule):
            continue
        spans = [by_index[i] for i in range(rule.phoneme_start, rule.phoneme_end) if i in by_index]
        if spans:
            start, end = min(s for s, _ in spans), max(e for _, e in spans)
            madds.append(Madd(rule.word_index, rule.rule, rule.golden_len, start, end))
    return Timing(
        words=tuple(Word(w.word_index, w.uthmani, w.span.start_s, w.span.end_s) for w in alignment.words),
        phones=tuple(Phone(t.phoneme, t.span.start_s, t.span.end_s) for t in tokens),
        groups=tuple(Group(g.phonemes, g.word_index, g.span.start_s, g.span.end_s) for g in alignment.groups),
        madds=tuple(madds),
        confidence=float(alignment.confidence),
    )


def recitation_from_proto(p: prosody_pb2.Recitation, *, name: str) -> Recitation:
    if not p.HasField("features"):
        raise InvalidArgument(f"{name}.features is missing")
    timing = timing_from_proto(p.reference, p.alignment) if p.HasField("alignment") else None
    return Recitation(features_from_proto(p.features, name=name), timing)


def _rhythm(r: Rhythm | None) -> prosody_pb2.Rhythm | None:
    if r is None:
        return None
    return prosody_pb2.Rhythm(
        npvi_v=r.npvi_v,
        varco_v=r.varco_v,
        rpvi_c_ms=r.rpvi_c_ms,
        varco_c=r.varco_c,
        percent_v=r.percent_v,
        articulation_rate=r.articulation_rate,
        pause_ratio=r.pause_ratio,
    )


def _melody(m: Melody) -> prosody_pb2.Melody:
    return prosody_pb2.Melody(
        range_st=m.range_st,
        final_lowering_st=m.final_lowering_st,
        words=[
            prosody_pb2.WordMelody(
                word_index=w.index, slope_st_per_s=w.slope_st_per_s, mean_st=w.mean_st, voiced_frames=w.voiced_frames
            )
            for w in m.words
        ],
    )


def comparison_to_proto(c: Comparison, reciter: str) -> prosody_pb2.Comparison:
    out = prosody_pb2.Comparison(
        reciter=reciter,
        word_alignment=c.word_alignment,
        tempo_ratio=c.tempo_ratio,
        tempo_source=c.tempo_source,
        key_shift_cents=c.key_shift_cents,
        learner_melody=_melody(c.learner_melody),
        reference_melody=_melody(c.reference_melody),
        parts=c.parts,
        similarity=c.similarity,
    )
    for w in c.words:
        item = out.words.add(
            word_index=w.index,
            text=w.text,
            learner=common_pb2.TimeSpan(start_s=w.learner_span[0], end_s=w.learner_span[1]),
            reference=common_pb2.TimeSpan(start_s=w.reference_span[0], end_s=w.reference_span[1]),
            learner_slope_st_per_s=w.learner_slope,
            reference_slope_st_per_s=w.reference_slope,
        )
        if w.contour_distance_st is not None and w.contour_similarity is not None:
            item.contour_distance_st = w.contour_distance_st
            item.contour_similarity = w.contour_similarity
    for m in c.madds:
        out.madds.add(
            word_index=m.word_index,
            text=m.text,
            rule=m.rule,
            golden_len=m.golden_len,
            learner_harakat=m.learner_harakat,
            learner_in_reference_harakat=m.learner_in_reference_harakat,
            reference_harakat=m.reference_harakat,
        )
    for side, rhythm in (("learner_rhythm", c.learner_rhythm), ("reference_rhythm", c.reference_rhythm)):
        message = _rhythm(rhythm)
        if message is not None:
            getattr(out, side).CopyFrom(message)
    if c.learner_maqam is not None:
        out.learner_maqam.CopyFrom(maqam_to_proto(c.learner_maqam))
    if c.reference_maqam is not None:
        out.reference_maqam.CopyFrom(maqam_to_proto(c.reference_maqam))
    if c.same_maqam is not None:
        out.same_maqam = c.same_maqam
    if c.contour_similarity is not None:
        out.contour_similarity = c.contour_similarity
    for f in c.feedback:
        out.feedback.add(kind=f.kind, ar=f.ar, en=f.en, weight=f.weight, word_index=f.word_index)
    return out
