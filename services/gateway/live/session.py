"""One live session: bytes in, events out, over the gateway's stages.

    feed(chunk) -> decoder -> session audio -> segmenter --(closed segment)--> queue
    worker: segment -> asr (the window's audio) -> follower.locate -> judge_stretch -> committer
    finish() -> last segment -> the whole recording assessed as Assess does -> revisions -> final

decode() and take() only decode and segment (cheap); the stages run on the worker task. Audio
ahead of the worker waits in take() once max_buffered_s of it is pending (backpressure on the
intake's queue, intake.py; the connection is still read, so its keepalive holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from services.common.errors import InvalidArgument, MeshError, ResourceExhausted
from services.common.pb import asr_pb2, common_pb2, gateway_pb2
from services.gateway.assess import Assessor, check_options
from services.gateway.live.committer import Committer
from services.gateway.live.decoder import decoder_for
from services.gateway.live.follower import ON_TARGET_SIMILARITY, Item, Match, locate
from services.gateway.live.judge import judge_stretch, window
from services.gateway.live.segmenter import NO_SPEECH, Segment, Segmenter
from services.gateway.live.settings import LiveSettings
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import targets
from services.gateway.stage_run import StageLedger

log = logging.getLogger(__name__)

# Words searched behind the position (repeats, restarts) and ahead of it (skips).
BEHIND_WORDS = 40
AHEAD_WORDS = 30
# Audio kept before a segment's first matched phoneme when the window is trimmed.
TRIM_PAD_S = 0.12
MIN_TRIM_PHONEMES = 4
# A segment shorter than this (a lone short word after a pause) is decoded together with the
# word before it, if that word ended less than LOOKBACK_MAX_S before: the model is weak on a
# lone short word. Both are judged; the earlier one's verdict may be updated.
LOOKBACK_BELOW_S = 0.9
LOOKBACK_MAX_S = 3.0


@lru_cache(maxsize=8)
def _prelude_phonemes(moshaf_key: tuple[tuple[str, object], ...]) -> tuple[str, str]:
    """The isti'adha and the basmala as phonemes, read with the session's attributes."""
    from quran_transcript import alphabet, quran_phonetizer

    from services.gateway.reference import quran

    model = moshaf_mod.to_model(dict(moshaf_key))
    istiadha = quran_phonetizer(alphabet.istiaatha.uthmani, model, remove_spaces=True).phonemes
    basmala = quran_phonetizer(quran.ayah_text(1, 1).uthmani, model, remove_spaces=True, sura_idx=1).phonemes
    return istiadha, basmala


class LiveSession:
    def __init__(self, assessor: Assessor, settings: LiveSettings, config: gateway_pb2.LiveConfig) -> None:
        self.assessor = assessor
        self.settings = settings
        self.config = config
        self.session_id = uuid.uuid4().hex[:16]
        self.events: asyncio.Queue[gateway_pb2.AssessLiveResponse | None] = asyncio.Queue()
        self.request = gateway_pb2.AssessRequest(target=config.target, options=config.options)
        if config.HasField("moshaf"):
            self.request.moshaf.CopyFrom(config.moshaf)
        # The session's audio, in a buffer that doubles when full (no copy of the whole
        # recording per chunk or per segment).
        self._buffer = np.zeros(16000 * 30, dtype=np.float32)
        self._received = 0  # samples at 16 kHz
        self._decoded = 0  # samples at 16 kHz decoded, taken or not
        self._arrivals: list[tuple[int, float]] = []  # (samples so far, wall clock) per chunk
        self._segments: asyncio.Queue[Segment | None] = asyncio.Queue()
        self._pending_s = 0.0
        self._room = asyncio.Event()
        self._room.set()
        self._worker: asyncio.Task[None] | None = None
        self.position = 0
        self._off_target = False
        self._held_from: float | None = None
        self._last_word_start: float | None = None
        self._last_word_end = 0.0
        self._looked_back = False
        self._warned: set[str] = set()
        self._timings: dict[str, float] = {"asr": 0.0, "model": 0.0, "judge": 0.0}
        self.words: list[common_pb2.ReferenceWord] = []
        self.committer = Committer(0)
        self.items: list[Item] = []
        self.preludes = 0

    # -- set-up -------------------------------------------------------------------------

    async def start(self) -> None:
        """Validates the config (bad ones raise InvalidArgument) and announces the session."""
        if not self.config.HasField("target"):
            raise InvalidArgument("config.target is missing: set target.ayah, target.words or target.ayah_range")
        targets.target_from_proto(self.config.target)
        moshaf_values = moshaf_mod.to_dict(self.config.moshaf if self.config.HasField("moshaf") else None)
        check_options(self.config.options)
        self.decoder = decoder_for(self.config)
        self.segmenter = Segmenter(self.settings)
        result = await self.assessor.reference(
            self.config.target, self.config.moshaf if self.config.HasField("moshaf") else None
        )
        reference = result.reference
        self.words = list(reference.words)
        self.committer = Committer(len(self.words))
        words = [Item(reference.phonemes[w.phoneme_start : w.phoneme_end], word=k) for k, w in enumerate(self.words)]
        istiadha, basmala = await asyncio.to_thread(_prelude_phonemes, tuple(sorted(moshaf_values.items())))
        first = self.words[0] if self.words else None
        starts_with_basmala = first is not None and first.surah == 1 and first.ayah == 1
        preludes = [Item(istiadha, kind="istiadha")]
        if not starts_with_basmala:
            preludes.append(Item(basmala, kind="basmala"))
        self.preludes = len(preludes)
        self.items = preludes + words
        self._worker = asyncio.create_task(self._work(), name=f"live-{self.session_id}")
        self._emit(
            started=gateway_pb2.LiveStarted(
                session_id=self.session_id, target=self.config.target, words=self.words, uthmani=reference.uthmani
            )
        )

    # -- audio in -----------------------------------------------------------------------

    @property
    def audio_s(self) -> float:
        return self._received / 16000

    async def feed(self, chunk: bytes) -> None:
        await self.take(await self.decode(chunk))

    async def decode(self, chunk: bytes) -> np.ndarray:
        """The chunk as 16 kHz mono, at once: the intake decodes as audio arrives, whatever the
        stages' pace, and the session limit bounds what waits decoded."""
        if len(chunk) > self.settings.max_chunk_bytes:
            raise InvalidArgument(
                f"an audio chunk of {len(chunk)} bytes is over the limit of {self.settings.max_chunk_bytes} bytes"
            )
        samples = await asyncio.to_thread(self.decoder.feed, chunk)
        self._decoded += samples.size
        if self._decoded / 16000 > self.settings.max_session_s:
            raise ResourceExhausted(
                f"the live session is over its limit of {self.settings.max_session_s:.0f} s of audio"
            )
        return samples

    async def take(self, samples: np.ndarray, arrived: float | None = None) -> None:
        """Decoded audio into the session; waits while too much of it waits for the stages
        (backpressure on the intake's queue, not on the connection)."""
        await self._room.wait()
        self._append(samples, arrived)
        for segment in self.segmenter.feed(samples):
            self._enqueue(segment)

    def _append(self, samples: np.ndarray, arrived: float | None = None) -> None:
        if samples.size:
            needed = self._received + samples.size
            if needed > self._buffer.size:
                grown = np.zeros(max(needed, 2 * self._buffer.size), dtype=np.float32)
                grown[: self._received] = self._buffer[: self._received]
                self._buffer = grown
            self._buffer[self._received : needed] = samples
            self._received = needed
        self._arrivals.append((self._received, time.perf_counter() if arrived is None else arrived))

    def _audio(self) -> np.ndarray:
        return self._buffer[: self._received]

    def _enqueue(self, segment: Segment) -> None:
        self._emit(
            segment=gateway_pb2.LiveSegment(
                index=segment.index,
                time_span=common_pb2.TimeSpan(start_s=segment.start_s, end_s=segment.end_s),
                closed_by_pause=segment.closed_by_pause,
            )
        )
        self._pending_s += segment.end_s - segment.start_s
        if self._pending_s >= self.settings.max_buffered_s:
            self._room.clear()
        self._segments.put_nowait(segment)
        self._warn_levels()

    def _warn_levels(self) -> None:
        if self.segmenter.clipped_frames >= 3 and "clipping" not in self._warned:
            self._warned.add("clipping")
            self._warn("clipping", "the recording clips (samples at full scale): move away from the microphone")
        if self.segmenter.peak_db < -35.0 and "too_quiet" not in self._warned:
            self._warned.add("too_quiet")
            self._warn("too_quiet", f"the recitation is quiet (peak {self.segmenter.peak_db:.0f} dBFS): speak up")

    def warn_draining(self) -> None:
        self._warn(
            "draining",
            "the server is shutting down: the recitation ends here, and the final assessment covers "
            f"the {self.audio_s:.1f} s received",
        )

    def _warn(self, code: str, message: str) -> None:
        self._emit(warning=gateway_pb2.LiveWarning(code=code, message=message))

    def _emit(self, degraded: list[str] | None = None, **kind: object) -> None:
        event = gateway_pb2.AssessLiveResponse(audio_s=self.audio_s, degraded=degraded or [], **kind)  # type: ignore[arg-type]
        self.events.put_nowait(event)

    # -- the worker ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            segment = await self._segments.get()
            if segment is None:
                return
            try:
                await self._assess_segment(segment)
            except MeshError as exc:
                # One segment that cannot be judged (the aligner refusing a stretch too long for
                # its audio, say) must not end the session: it gets an empty, degraded answer.
                log.warning("live segment not judged", extra={"session": self.session_id, "error": exc.message})
                self._held_from = None
                self._emit(degraded=["alignment"], words=gateway_pb2.LiveWords(segment_index=segment.index))
            finally:
                self._pending_s = max(0.0, self._pending_s - (segment.end_s - segment.start_s))
                if self._pending_s < self.settings.max_buffered_s:
                    self._room.set()

    def _arrived_at(self, seconds: float) -> float:
        target = int(seconds * 16000)
        for count, at in self._arrivals:
            if count >= target:
                return at
        return time.perf_counter()

    async def _transcribe(self, start_s: float, end_s: float) -> asr_pb2.Transcription | None:
        audio = window(self._audio(), start_s, end_s)
        if audio.samples.size < 1600:
            return None
        ledger = StageLedger()
        reserve = self.assessor.config.fusion_reserve_s

        async def call() -> asr_pb2.Transcription:
            return await self.assessor._transcribe(audio, self.request.options, self.settings.stage_timeout_s - reserve)

        started = time.perf_counter()
        transcription = await ledger.run("asr", call)
        self._timings["asr"] += (time.perf_counter() - started) * 1000
        if transcription is not None:
            self._timings["model"] += sum(t.duration_ms for t in transcription.timings if t.stage == "model")
        return transcription

    async def _assess_segment(self, segment: Segment) -> None:
        start_s = segment.start_s if self._held_from is None else min(self._held_from, segment.start_s)
        self._looked_back = (
            self._held_from is None
            and self._last_word_start is not None
            and segment.end_s - segment.start_s < LOOKBACK_BELOW_S
            and segment.start_s - self._last_word_end < LOOKBACK_MAX_S
        )
        if self._looked_back and self._last_word_start is not None:
            start_s = max(0.0, self._last_word_start - TRIM_PAD_S)
        self._timings = {"asr": 0.0, "model": 0.0, "judge": 0.0}
        transcription = await self._transcribe(start_s, segment.end_s)
        if transcription is None:
            self._emit(degraded=["asr"], words=gateway_pb2.LiveWords(segment_index=segment.index))
            return
        decoded = transcription.decode.phonemes
        lo = max(0, self.position - BEHIND_WORDS)
        hi = min(len(self.words), self.position + AHEAD_WORDS)
        candidates = (self.items[: self.preludes] if lo == 0 else []) + self.items[
            self.preludes + lo : self.preludes + hi
        ]
        expected = (self.preludes if lo == 0 else 0) + self.position - lo
        match = await asyncio.to_thread(locate, decoded, candidates, expected)
        if match is None or (not match.words and not match.preludes):
            # Nothing recognisable: an empty verdict, so that every segment has its answer.
            self._emit(words=gateway_pb2.LiveWords(segment_index=segment.index))
            return
        frame_s = transcription.frame_duration_s or 0.04
        tokens = transcription.decode.tokens

        def at(decoded_index: int) -> float:
            if not tokens:
                return start_s
            token = tokens[min(decoded_index, len(tokens) - 1)]
            return start_s + token.start_frame * frame_s

        if match.similarity < ON_TARGET_SIMILARITY:
            await self._report_off_target(segment, decoded, match.similarity)
            # As in Assess, run_rules_on_mismatch judges the closest words anyway.
            if not (self.request.options.run_rules_on_mismatch and match.words):
                return
        for prelude in match.preludes:
            span = common_pb2.TimeSpan(start_s=at(prelude.decoded_start), end_s=at(prelude.decoded_end))
            self._emit(
                prelude=gateway_pb2.LivePrelude(segment_index=segment.index, kind=prelude.item.kind, time_span=span)
            )
        if not match.words:
            self._held_from = None
            return
        await self._judge_words(segment, match, start_s, transcription, at)

    async def _report_off_target(self, segment: Segment, decoded: str, similarity: float) -> None:
        finder = self.assessor.verifier.finder
        passages = await asyncio.to_thread(finder.find, decoded) if finder is not None else []
        self._off_target = True
        self._held_from = None
        self._emit(
            off_target=gateway_pb2.LiveOffTarget(
                segment_index=segment.index, likely_recited=[p.to_proto() for p in passages], similarity=similarity
            )
        )

    async def _judge_words(
        self,
        segment: Segment,
        match: Match,
        start_s: float,
        transcription: asr_pb2.Transcription,
        at: Callable[[int], float],
    ) -> None:
        first = match.words[0].item.word
        end = match.words[-1].item.word + 1
        commit_end = end
        if not segment.closed_by_pause and end - first > 1:
            # Cut at the cap, not at a pause: the last word may go on; judge it next time.
            commit_end = end - 1
            self._held_from = max(start_s, at(match.words[-1].decoded_start) - TRIM_PAD_S)
        else:
            self._held_from = None
        # Audio before the first matched word (a prelude, a false start) is trimmed off and the
        # rest decoded again: the forced alignment must see only the stretch's words.
        first_at = at(match.words[0].decoded_start)
        window_start = start_s
        # A word read after a pause starts in its starting form (a hamzat al-wasl the
        # connected reference drops): a few unmatched phonemes at the start are that, not
        # extra speech.
        leading = match.words[0].decoded_start
        if (match.preludes or leading >= MIN_TRIM_PHONEMES) and first_at - TRIM_PAD_S > start_s:
            window_start = first_at - TRIM_PAD_S
            retranscribed = await self._transcribe(window_start, segment.end_s)
            if retranscribed is not None:
                transcription = retranscribed
            else:
                window_start = start_s
        reason = "advance"
        missing: list[int] = []
        if self._looked_back and first == self.position - 1:
            reason = "advance"  # the word before, decoded again as look-back, not a repeat
        elif first < self.position:
            reason = "restart" if first == 0 or self.words[first].word_in_ayah == 0 else "repeat"
        elif first > self.position:
            reason = "skip"
            missing = [k for k in range(self.position, first) if k not in self.committer.committed]
        elif self._off_target:
            reason = "follow"
        self._off_target = False
        judged_at = time.perf_counter()
        judgement = await judge_stretch(
            self.assessor,
            self.words,
            first,
            end,
            self.request,
            transcription,
            window(self._audio(), window_start, segment.end_s),
            window_start,
        )
        self._timings["judge"] += (time.perf_counter() - judged_at) * 1000
        committed = self.committer.commit(w for w in judgement.words if w.word_index < commit_end)
        timed = [w for w in committed if w.time_span.end_s > 0]
        if timed:
            self._last_word_start, self._last_word_end = timed[-1].time_span.start_s, timed[-1].time_span.end_s
        skipped = self.committer.missing(missing, [self._word_stub(k) for k in range(len(self.words))])
        self.position = commit_end
        delay_ms = (time.perf_counter() - self._arrived_at(segment.end_s)) * 1000
        self._emit(
            degraded=judgement.degraded,
            words=gateway_pb2.LiveWords(
                segment_index=segment.index,
                words=skipped + committed,
                errors=[e for e in judgement.errors if e.word_index < commit_end],
                findings=judgement.findings,
                delay_ms=delay_ms,
                missing_words=missing,
                timings=[common_pb2.StageTiming(stage=k, duration_ms=v) for k, v in self._timings.items()],
            ),
        )
        self._emit(position=gateway_pb2.LivePosition(next_word=self.position, reason=reason))

    def _word_stub(self, index: int) -> gateway_pb2.WordAssessment:
        word = self.words[index]
        return gateway_pb2.WordAssessment(word_index=index, uthmani=word.uthmani, surah=word.surah, ayah=word.ayah)

    # -- the end ------------------------------------------------------------------------

    async def finish(self) -> None:
        """The client half-closed: judge what is left, then the whole recording."""
        tail = await asyncio.to_thread(self.decoder.finish)
        self._append(tail)
        for segment in [*self.segmenter.feed(tail), *self.segmenter.finish()]:
            self._enqueue(segment)
        await self._drain()
        if self.segmenter.speech_frames == 0 or self._received < 1600:
            self._warn("no_speech", NO_SPEECH)
            raise InvalidArgument(NO_SPEECH)
        audio = self._audio()
        request = gateway_pb2.AssessRequest()
        request.CopyFrom(self.request)
        request.audio.pcm.CopyFrom(
            common_pb2.RawPcm(
                data=audio.tobytes(), sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE
            )
        )
        final = await self.assessor.assess(request, streamed=True)
        revised = self.committer.reconcile(final)
        if revised:
            self._emit(
                words=gateway_pb2.LiveWords(
                    segment_index=-1,
                    words=revised,
                    errors=[e for e in final.errors if e.word_index in {w.word_index for w in revised}],
                    findings=final.findings,
                    revised=True,
                )
            )
        self.position = len(self.words)
        self._emit(final=final)

    async def _drain(self) -> None:
        self._segments.put_nowait(None)
        if self._worker is not None:
            await self._worker

    async def close(self) -> None:
        """Cancels whatever is still running (the client went away)."""
        self.decoder.close() if hasattr(self, "decoder") else None
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, MeshError):
                await self._worker
