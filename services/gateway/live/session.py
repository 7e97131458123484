"""One live session: bytes in, events out, over the gateway's stages.

    feed(chunk) -> decoder -> recording (16 kHz mono) -> segmenter --(closed segment)--> queue
    worker: segment -> the recitation follower (services/gateway/follow) -> events
    finish() -> last segment -> the final Assessment composed from what the follower judged

With target.locate the worker hands segments, and probes of the segment still open, to
anywhere.py instead, which finds the passage and runs a follower per passage recited.

The session only decodes, segments and queues; following the reciter, judging each stretch and
composing the final are the follower's, the same one Assess runs over a whole file. The final
is composed from the attempts the learner's events carried: nothing is judged again at the end.

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

import numpy as np

from services.common import context
from services.common.errors import InvalidArgument, MeshError, ResourceExhausted
from services.common.pb import common_pb2, gateway_pb2
from services.gateway import metrics
from services.gateway.assess import Assessor, check_options
from services.gateway.follow.compose import compose
from services.gateway.follow.follower import RecitationFollower
from services.gateway.follow.preludes import prelude_items
from services.gateway.follow.recording import Recording
from services.gateway.live.anywhere import Anywhere, Probe
from services.gateway.live.decoder import decoder_for
from services.gateway.live.encoding import LiveEncoder
from services.gateway.live.segmenter import NO_SPEECH, Segment, Segmenter
from services.gateway.live.settings import LiveSettings
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import targets

log = logging.getLogger(__name__)


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
        self.recording = Recording()
        self._decoded = 0  # samples at 16 kHz decoded, taken or not
        self._segments: asyncio.Queue[Segment | Probe | None] = asyncio.Queue()
        self._pending_s = 0.0
        self._room = asyncio.Event()
        self._room.set()
        self._worker: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self.follower: RecitationFollower | None = None
        # With target.locate: the passage is found, and followed, by this instead.
        self.anywhere: Anywhere | None = None
        # The open segment's encoding while it is recited (encoding.py); None when off.
        self.encoder: LiveEncoder | None = None

    # -- set-up -------------------------------------------------------------------------

    async def start(self) -> None:
        """Validates the config (bad ones raise InvalidArgument) and announces the session."""
        if not self.config.HasField("target"):
            raise InvalidArgument("config.target is missing: set target.ayah, target.words or target.ayah_range")
        locating = self.config.target.WhichOneof("kind") == "locate"
        if locating and self.assessor.locator is None:
            raise InvalidArgument("target.locate: locating is off on this gateway; name the passage")
        if not locating:
            targets.target_from_proto(self.config.target)
        moshaf = self.config.moshaf if self.config.HasField("moshaf") else None
        moshaf_mod.to_dict(moshaf)
        check_options(self.config.options)
        self.decoder = decoder_for(self.config)
        self.segmenter = Segmenter(self.settings)
        timeout_s = self.settings.stage_timeout_s - self.assessor.config.fusion_reserve_s
        if self.settings.encode_while_recited:
            # A segment lasts at most max_segment_s of audio; a client at real time takes as long.
            encode_timeout_s = 3 * self.settings.max_segment_s + timeout_s
            self.encoder = LiveEncoder(self.assessor.calls, self.session_id, self.config.options, encode_timeout_s)
        if locating:
            # No words yet: they come with the `located` event once the passage is found.
            self.anywhere = Anywhere(self.assessor, self.request, self.recording, lambda: timeout_s)
            self._worker = asyncio.create_task(self._work(), name=f"live-{self.session_id}")
            self._emit(started=gateway_pb2.LiveStarted(session_id=self.session_id, target=self.config.target))
            return
        result = await self.assessor.reference(self.config.target, moshaf)
        reference = result.reference
        self.follower = RecitationFollower(
            self.assessor.calls,
            self.assessor.verifier,
            self.request,
            result,
            await prelude_items(moshaf, reference.words),
            self.recording,
            lambda: timeout_s,
        )
        self._worker = asyncio.create_task(self._work(), name=f"live-{self.session_id}")
        self._emit(
            started=gateway_pb2.LiveStarted(
                session_id=self.session_id, target=self.config.target, words=reference.words, uthmani=reference.uthmani
            )
        )

    # -- audio in -----------------------------------------------------------------------

    @property
    def audio_s(self) -> float:
        return self.recording.duration_s

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
        if self.encoder is not None:
            self.encoder.feed(self.recording, self.segmenter.open_start_s)
        if self.anywhere is not None:
            probe = self.anywhere.probe_due(self.segmenter.open_start_s, self.recording.duration_s)
            if probe is not None:
                self._segments.put_nowait(probe)

    def _append(self, samples: np.ndarray, arrived: float | None = None) -> None:
        self.recording.append(samples, arrived)

    def _enqueue(self, segment: Segment) -> None:
        if self.encoder is not None:
            self.encoder.close(segment, self.recording)
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

    def _emit_all(self, events: list[gateway_pb2.AssessLiveResponse]) -> None:
        for event in events:
            event.audio_s = self.audio_s
            self.events.put_nowait(event)

    # -- the worker ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            segment = await self._segments.get()
            if segment is None:
                return
            if isinstance(segment, Probe):
                await self._probe(segment)
                continue
            try:
                await self._streamed(segment)
                if self.anywhere is not None:
                    self._emit_all(await self.anywhere.segment(segment))
                else:
                    assert self.follower is not None
                    self._emit_all(await self.follower.follow(segment))
            except MeshError as exc:
                # The follower answers a stage's failure with a degraded event itself; what
                # reaches here (the asr's vocabulary contract broken mid-session) must not end
                # the session either: the segment gets an empty, degraded answer.
                log.warning("live segment not judged", extra={"session": self.session_id, "error": exc.message})
                delay_ms = (time.perf_counter() - self.recording.arrived_at(segment.end_s)) * 1000
                self._emit(
                    degraded=["asr"], words=gateway_pb2.LiveWords(segment_index=segment.index, delay_ms=delay_ms)
                )
            finally:
                self._pending_s = max(0.0, self._pending_s - (segment.end_s - segment.start_s))
                if self._pending_s < self.settings.max_buffered_s:
                    self._room.set()

    async def _streamed(self, segment: Segment) -> None:
        """The segment's Transcription encoded while it was recited, handed to whoever follows
        it (they call Transcribe themselves without one)."""
        if self.encoder is None:
            return
        decoded = await self.encoder.result(segment, self.settings.stage_timeout_s)
        if decoded is None:
            return
        await self.assessor.calls.observe(decoded.transcription)
        if self.anywhere is not None:
            self.anywhere.remember(segment.start_s, segment.end_s, decoded)
        elif self.follower is not None:
            self.follower.remember(segment.start_s, segment.end_s, decoded)

    async def _probe(self, probe: Probe) -> None:
        assert self.anywhere is not None
        try:
            self._emit_all(await self.anywhere.probe(probe, self.segmenter.open_start_s))
        except MeshError as exc:
            # A provisional decode only hastens an answer: the closed segment gives it anyway.
            log.warning("live probe failed", extra={"session": self.session_id, "error": exc.message})

    # -- the end ------------------------------------------------------------------------

    async def finish(self) -> None:
        """The client half-closed: judge what is left, then compose the final Assessment from
        what was judged (the verdicts the learner saw)."""
        tail = await asyncio.to_thread(self.decoder.finish)
        self._append(tail)
        for segment in [*self.segmenter.feed(tail), *self.segmenter.finish()]:
            self._enqueue(segment)
        await self._drain()
        if self.segmenter.speech_frames == 0 or self.recording.duration_s < 0.1:
            self._warn("no_speech", NO_SPEECH)
            raise InvalidArgument(NO_SPEECH)
        started = time.perf_counter()
        if self.anywhere is not None:
            events, final = await self.anywhere.finish()
            self._emit_all(events)
            self._send_final(final, started)
            return
        assert self.follower is not None
        self._emit_all(await self.follower.flush())
        self._emit_all(await self.follower.retry_failed())
        composition = await compose(self.follower.followed(), self.assessor.verifier, self.assessor.versions.model)
        if composition.unseen is not None:
            # The words the recitation never reached get their verdict before the final, so a
            # word's last live verdict is always its final one.
            unseen = composition.unseen
            unseen.delay_ms = (time.perf_counter() - self.recording.arrived_at(self.recording.duration_s)) * 1000
            self._emit(words=unseen)
        self._send_final(composition.assessment, started)

    def _send_final(self, final: gateway_pb2.Assessment, started: float) -> None:
        final.request_id = context.request_id() or ""
        final.total_ms = (time.perf_counter() - started) * 1000
        metrics.record_assessment(list(final.degraded))
        self._emit(final=final)

    async def _drain(self) -> None:
        self._segments.put_nowait(None)
        if self._worker is not None:
            await self._worker

    async def close(self) -> None:
        """Cancels whatever is still running (the client went away)."""
        self.decoder.close() if hasattr(self, "decoder") else None
        if self.encoder is not None:
            await self.encoder.aclose()
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, MeshError):
                await self._worker
