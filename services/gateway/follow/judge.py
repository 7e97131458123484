"""One stretch of a recitation judged by the gateway's own stages.

The same calls Assess always made (the reference service, the alignment and tajweed stages,
fusion), on the stretch's audio and the stretch's own reference (its first word read as
started, its last as stopped on); the answer is then put back in the recitation's terms (word
indexes of the target, times on the recording's clock) and cut into one attempt per word.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import numpy as np

from services.common.audio import DecodedAudio
from services.common.findings import LETTER_RULES
from services.common.pb import asr_pb2, common_pb2, gateway_pb2, tajweed_pb2
from services.gateway.follow.attempts import decoded_by_word
from services.gateway.follow.judgement import Judgement
from services.gateway.follow.stretch import WordKey, stretch_target, word_key
from services.gateway.fusion import FusionInput, fuse
from services.gateway.stage_calls import StageCalls
from services.gateway.stage_run import StageLedger
from services.tajweed.energy import energy_envelope


def _shift(span: common_pb2.TimeSpan, offset_s: float) -> None:
    if span.end_s > 0 or span.start_s > 0:
        span.start_s += offset_s
        span.end_s += offset_s


async def judge_stretch(
    calls: StageCalls,
    target_words: list[common_pb2.ReferenceWord],
    first: int,
    end: int,
    request: gateway_pb2.AssessRequest,
    transcription: asr_pb2.Transcription,
    audio: DecodedAudio,
    offset_s: float,
    ledger: StageLedger,
    segment_index: int,
    whole: common_pb2.Reference | None = None,
) -> Judgement:
    """Verdicts of the target's words [first, end), recited in `audio` (which starts at
    `offset_s` on the recording's clock) and decoded in `transcription`; `whole` is the
    target's own reference. Raises
    FailedPrecondition when the aligner refuses the stretch (too little audio for its words)."""
    judgement = Judgement(segment_index=segment_index, offset_s=offset_s, transcription=transcription)
    moshaf = request.moshaf if request.HasField("moshaf") else None
    options = request.options
    target = stretch_target(target_words, first, end)

    async def reference_call() -> common_pb2.Reference:
        return (await calls.reference(target, moshaf)).reference

    # A stretch of the whole target is the target read from its start to a stop at its end:
    # its reference is the target's own (the same phonemes, groups and rules), already at hand.
    whole_target = whole is not None and first == 0 and end == len(target_words)
    reference = whole if whole_target else await ledger.run("reference", reference_call)
    if reference is None:
        return judgement
    judgement.reference = reference
    alignment = await calls.align(transcription, reference, options, ledger)
    judgement.alignment = alignment
    validated: tajweed_pb2.ValidateResponse | None = None
    if alignment is None:
        ledger.record("tajweed", common_pb2.STAGE_STATUS_SKIPPED, message="no alignment")
    else:

        async def energy_call() -> tuple[np.ndarray, float]:
            return await asyncio.to_thread(energy_envelope, audio.samples, audio.sample_rate)

        energy = await ledger.run("energy", energy_call)
        validated = await calls.validate(reference, alignment, transcription, energy, audio, options, ledger)
        if validated is not None and _weigh_letters(calls, validated, transcription):
            # Letter errors are weighed by how many frame phases hear them (tajweed explain.py):
            # the phases are decoded only for a stretch that has some, so a clean one costs nothing.
            phases = await calls.frame_phases(audio, ledger)
            if phases:
                phased = asr_pb2.Transcription()
                phased.CopyFrom(transcription)
                phased.decode.phase_phonemes[:] = phases
                weighed = await calls.validate(reference, alignment, phased, energy, audio, options, ledger)
                validated = weighed if weighed is not None else validated
    findings = list(validated.findings) if validated is not None else None
    if validated is not None and validated.HasField("tempo"):
        judgement.tempo = validated.tempo
    fusion_started = time.perf_counter()
    fused = fuse(
        FusionInput(
            reference=reference,
            decode=transcription.decode,
            alignment=alignment,
            findings=findings,
            # The follower placed the stretch; the recording's content is checked as a whole.
            content=gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_MATCH),
            # As in Assess: without alignment or tajweed the letters are still judged from the decode.
            rules_ran=True,
            include_correct=options.include_correct,
        )
    )
    ledger.record("fusion", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - fusion_started) * 1000)
    index_of: dict[WordKey, int] = {word_key(w): first + k for k, w in enumerate(target_words[first:end])}
    stretch_index = [index_of.get(word_key(w), -1) for w in reference.words]
    judgement.target_index = stretch_index

    def moved_index(index: int) -> int:
        return stretch_index[index] if 0 <= index < len(stretch_index) else index

    for word in fused.words:
        if word.word_index < len(stretch_index) and stretch_index[word.word_index] >= 0:
            judgement.words.append(_moved(word, stretch_index[word.word_index], offset_s))
    judgement.findings.extend(_moved(f, moved_index(f.word_index), offset_s) for f in fused.findings)
    judgement.errors.extend(_moved(e, moved_index(e.word_index), offset_s) for e in fused.errors)
    if findings is not None:
        judgement.scored = []
        for finding in findings:
            scored = common_pb2.Finding()
            scored.CopyFrom(finding)
            scored.word_index = moved_index(finding.word_index)
            judgement.scored.append(scored)
    per_word = decoded_by_word(reference, transcription.decode.phonemes)
    for k, stretch_word in enumerate(reference.words):
        if stretch_index[k] >= 0:
            judgement.decoded[stretch_index[k]] = per_word[k]
            phonemes = reference.phonemes[stretch_word.phoneme_start : stretch_word.phoneme_end]
            judgement.judged_phonemes[stretch_index[k]] = phonemes
    return judgement


def _weigh_letters(
    calls: StageCalls, validated: tajweed_pb2.ValidateResponse, transcription: asr_pb2.Transcription
) -> bool:
    """Whether the stretch's letter errors still need their frame phases."""
    if calls.config.letter_phases <= 1 or transcription.decode.phase_phonemes:
        return False
    return any(f.rule in LETTER_RULES and f.verdict != common_pb2.VERDICT_CORRECT for f in validated.findings)


_Placed = TypeVar("_Placed", gateway_pb2.WordAssessment, common_pb2.Finding, gateway_pb2.ErrorItem)


def _moved(message: _Placed, word_index: int, offset_s: float) -> _Placed:
    """A copy of a stretch's word, finding or error in the target's terms: its word index among
    the target's words, its time on the recording's clock."""
    moved = type(message)()
    moved.CopyFrom(message)
    moved.word_index = word_index
    _shift(moved.time_span, offset_s)
    return moved
