"""Reference recitations: a teacher's recording registered per ayah, analysed through the mesh
(asr -> alignment -> prosody) and cached with the ayah's text reference.

`add` stores the audio (a recording of several ayahs is cut into ayahs at the midpoints between
their aligned words) and computes each ayah's analysis; `analysis` reads it from the cache, or
recomputes it from the stored audio when the entry is cold, evicted, or from another model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.errors import InvalidArgument
from services.common.pb import alignment_pb2, asr_pb2, common_pb2, prosody_pb2
from services.gateway.prosody_stage import ProsodyStage
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import targets
from services.gateway.reference.cache import InvalidValue, StoreUnavailable, cache_key
from services.gateway.reference.recitation_entry import decode_entry, encode_entry
from services.gateway.reference.recitation_store import RATE, RecitationStore, Registered, check_reciter, sha256_of
from services.gateway.reference.service import ReferenceService
from services.gateway.stages import Stages

log = logging.getLogger(__name__)

# Audio kept either side of an ayah's aligned words when a recording is cut into ayahs.
EDGE_S = 0.3
# As the gateway's Assess (assess.py): longer audio goes to the asr as a stream of chunks.
UNARY_AUDIO_LIMIT_S = 100.0
STREAM_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Analysed:
    analysis: prosody_pb2.ReciterAnalysis
    reference: common_pb2.Reference
    cache_hit: bool


def pcm_audio(samples: npt.NDArray[np.float32]) -> common_pb2.Audio:
    layout = common_pb2.RawPcm(
        data=np.ascontiguousarray(samples, dtype="<f4").tobytes(),
        sample_rate_hz=RATE,
        channels=1,
        encoding=common_pb2.PCM_ENCODING_F32LE,
    )
    return common_pb2.Audio(pcm=layout)


def ayah_target(surah: int, ayah: int) -> common_pb2.Target:
    return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=surah, ayah=ayah))


def split_by_ayah(
    reference: common_pb2.Reference, alignment: common_pb2.Alignment, duration_s: float
) -> dict[int, tuple[float, float]]:
    """Each ayah's span in the recording: its aligned words, cut at the midpoints between ayahs."""
    spans: dict[int, list[float]] = {}
    for word in alignment.words:
        ayah = reference.words[word.word_index].ayah
        lo, hi = spans.get(ayah, [word.span.start_s, word.span.end_s])
        spans[ayah] = [min(lo, word.span.start_s), max(hi, word.span.end_s)]
    order = sorted(spans)
    cuts: dict[int, tuple[float, float]] = {}
    for i, ayah in enumerate(order):
        start = 0.0 if i == 0 else (spans[order[i - 1]][1] + spans[ayah][0]) / 2
        end = duration_s if i == len(order) - 1 else (spans[ayah][1] + spans[order[i + 1]][0]) / 2
        cuts[ayah] = (max(0.0, min(start, spans[ayah][0] - EDGE_S)), min(duration_s, max(end, spans[ayah][1] + EDGE_S)))
    return cuts


class RecitationService:
    def __init__(
        self, store: RecitationStore, references: ReferenceService, stages: Stages, prosody: ProsodyStage | None
    ) -> None:
        self.store = store
        self.references = references
        self.stages = stages
        self.prosody = prosody
        # Analyses of one (ayah, reciter) in flight: concurrent cold reads compute it once.
        self._inflight: dict[tuple[str, str], asyncio.Future[Analysed]] = {}

    def _prosody(self) -> ProsodyStage:
        if self.prosody is None:
            raise InvalidArgument("reference recitations need the prosody stage: MUAALEM_PROSODY_TARGET is empty")
        return self.prosody

    async def _transcribe(self, samples: npt.NDArray[np.float32]) -> asr_pb2.Transcription:
        options = asr_pb2.TranscribeOptions(include_log_probs=True, levels=["phonemes"])
        audio = pcm_audio(samples)
        if len(samples) / RATE <= UNARY_AUDIO_LIMIT_S:
            return await self.stages.transcribe(asr_pb2.TranscribeRequest(audio=audio, options=options), None)
        # A recording of many ayahs: streamed in chunks, as the gateway streams a long Assess.
        pcm, layout = audio.pcm.data, audio.pcm
        layout.data = b""

        async def chunks() -> AsyncIterator[asr_pb2.TranscribeStreamRequest]:
            yield asr_pb2.TranscribeStreamRequest(
                header=asr_pb2.TranscribeStreamHeader(options=options, pcm_format=layout)
            )
            for offset in range(0, len(pcm), STREAM_CHUNK_BYTES):
                yield asr_pb2.TranscribeStreamRequest(chunk=pcm[offset : offset + STREAM_CHUNK_BYTES])

        return await self.stages.transcribe_stream(chunks(), None)

    async def _align(self, samples: npt.NDArray[np.float32], reference: common_pb2.Reference) -> common_pb2.Alignment:
        transcription = await self._transcribe(samples)
        log_probs = next((lp.log_probs for lp in transcription.log_probs if lp.level == "phonemes"), None)
        if log_probs is None:
            raise InvalidArgument("the asr stage returned no phoneme log-probs for the reference recitation")
        reply = await self.stages.align(
            alignment_pb2.AlignRequest(
                phoneme_log_probs=log_probs, frame_duration_s=transcription.frame_duration_s, reference=reference
            ),
            None,
        )
        return reply.alignment

    async def _analyse(
        self, samples: npt.NDArray[np.float32], surah: int, ayah: int, reciter: str, model_version: str
    ) -> tuple[prosody_pb2.ReciterAnalysis, common_pb2.Reference]:
        prosody = self._prosody()
        reference = (await self.references.get(ayah_target(surah, ayah), None, model_version)).reference
        # The prosody stage needs only the audio: it runs beside asr and alignment.
        alignment, analysed = await asyncio.gather(
            self._align(samples, reference), prosody.analyze(prosody_pb2.AnalyzeRequest(audio=pcm_audio(samples)), None)
        )
        side = prosody_pb2.Recitation(features=analysed.features, reference=reference, alignment=alignment)
        # The reference against itself: the prosody stage's rhythm and melody of it, to cache.
        itself = (await prosody.compare(prosody_pb2.CompareRequest(learner=side, reference=side), None)).comparison
        analysis = prosody_pb2.ReciterAnalysis(
            reciter=reciter,
            features=analysed.features,
            alignment=alignment,
            melody=itself.reference_melody,
            audio_sha256=sha256_of(samples),
            computed_at=time.time(),
        )
        if itself.HasField("reference_rhythm"):
            analysis.rhythm.CopyFrom(itself.reference_rhythm)
        return analysis, reference

    def _key(self, surah: int, ayah: int, model_version: str) -> str:
        return cache_key(model_version, targets.target_from_proto(ayah_target(surah, ayah)), moshaf_mod.to_dict(None))

    async def _read(self, key: str) -> prosody_pb2.ReferenceEntry | None:
        try:
            raw = await self.references.store.get(key)
        except StoreUnavailable:
            raw = await self.references.fallback.get(key) if self.references.fallback is not None else None
        if raw is None:
            return None
        try:
            return decode_entry(raw)
        except InvalidValue as exc:
            log.warning("cached entry %s recomputed: %s", key, exc)
            return None

    async def _write(
        self, key: str, reference: common_pb2.Reference, analysis: prosody_pb2.ReciterAnalysis, model_version: str
    ) -> None:
        # Read, merge, write: other reciters of the ayah stay (a race between two writers of one
        # ayah loses one analysis, which the next read recomputes from the stored audio).
        entry = await self._read(key) or prosody_pb2.ReferenceEntry()
        kept = [r for r in entry.recitations if r.reciter != analysis.reciter]
        fresh = prosody_pb2.ReferenceEntry(
            reference=reference, recitations=[*kept, analysis], model_version=model_version, computed_at=time.time()
        )
        value = encode_entry(fresh)
        try:
            await self.references.store.set(key, value, self.references.ttl_s)
        except StoreUnavailable:
            if self.references.fallback is not None:
                await self.references.fallback.set(key, value, self.references.ttl_s)

    async def add(
        self,
        samples: npt.NDArray[np.float32],
        *,
        surah: int,
        ayah: int,
        last_ayah: int | None,
        reciter: str,
        make_default: bool,
        model_version: str,
    ) -> list[Registered]:
        check_reciter(reciter)
        if last_ayah is None or last_ayah == ayah:
            targets.target_from_proto(ayah_target(surah, ayah))  # a missing ayah is refused here
            pieces = {ayah: samples}
        else:
            whole = common_pb2.Target(
                ayah_range=common_pb2.AyahRangeTarget(surah=surah, first_ayah=ayah, last_ayah=last_ayah)
            )
            reference = (await self.references.get(whole, None, model_version)).reference
            alignment = await self._align(samples, reference)
            cuts = split_by_ayah(reference, alignment, len(samples) / RATE)
            pieces = {a: samples[int(s * RATE) : int(e * RATE)] for a, (s, e) in cuts.items()}
        added = []
        for number, piece in sorted(pieces.items()):
            analysis, reference = await self._analyse(piece, surah, number, reciter, model_version)
            registered = self.store.put(surah, number, reciter, piece, make_default)
            analysis.audio_sha256 = registered.audio_sha256
            await self._write(self._key(surah, number, model_version), reference, analysis, model_version)
            added.append(registered)
        return added

    async def analysis(self, surah: int, ayah: int, reciter: str, model_version: str) -> Analysed:
        """The reciter's ('' for the default) analysis of the ayah, from the cache or recomputed."""
        name = self.store.resolve(surah, ayah, reciter)
        key = self._key(surah, ayah, model_version)
        flight = self._inflight.get((key, name))
        if flight is None:
            flight = asyncio.ensure_future(self._lookup(key, surah, ayah, name, model_version))
            self._inflight[(key, name)] = flight
            flight.add_done_callback(lambda _: self._inflight.pop((key, name), None))
        return await asyncio.shield(flight)

    async def _lookup(self, key: str, surah: int, ayah: int, name: str, model_version: str) -> Analysed:
        entry = await self._read(key)
        if entry is not None:
            found = next((r for r in entry.recitations if r.reciter == name), None)
            if found is not None and entry.HasField("reference"):
                return Analysed(found, entry.reference, cache_hit=True)
        samples = await asyncio.to_thread(self.store.load, surah, ayah, name)
        analysis, reference = await self._analyse(samples, surah, ayah, name, model_version)
        await self._write(key, reference, analysis, model_version)
        return Analysed(analysis, reference, cache_hit=False)

    def remove(self, surah: int, ayah: int, reciter: str) -> None:
        """From the durable store; the cached analysis ages out with its entry (never read again:
        `analysis` resolves the name against the store first)."""
        self.store.remove(surah, ayah, reciter)

    async def warm(self, model_version: str) -> int:
        """Every registered recitation's analysis into the cache; how many were computed."""
        computed = 0
        for item in self.store.list():
            result = await self.analysis(item.surah, item.ayah, item.reciter, model_version)
            computed += 0 if result.cache_hit else 1
        return computed
