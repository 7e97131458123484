"""TranscribeLive's protocol, transport-free: request messages in, response messages out.

One call is one segment: `config` (session id, options, the PCM layout), then `audio` as it is
recorded, then `end`. A reader task takes the messages as they come (so that a client's mistake
is answered at once, even while the model runs) and appends the audio to the segment's
OnlineStream; the responding loop runs the windows the audio allows through the engine's
batcher, answers each run with progress, and after `end` answers with the Transcription.

Refused, with the field and what it accepts: messages out of order (audio before config, a
second config, anything after end), a layout outside the audio module's range, audio that is not
whole sample frames, a stream that closes without `end` (INVALID_ARGUMENT); a client more than
MUAALEM_ASR_STREAM_MAX_AHEAD_S of audio ahead of the encoder (RESOURCE_EXHAUSTED: it is a live
stream, sent at the pace it is recorded); no message for MUAALEM_ASR_STREAM_IDLE_S
(DEADLINE_EXCEEDED). The servicer maps these errors to statuses; a client that goes away cancels
the call, and with it its windows still waiting in the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from services.asr import convert
from services.asr.segmenter import SAMPLE_RATE
from services.asr.streaming import OnlineStream, StreamingRecognizer
from services.common import audio, tracing
from services.common.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from services.common.pb import asr_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SESSION_ID = 128
# How long the answer waits for the client's half-close after `end` before it stops reading.
READER_GRACE_S = 2.0


@dataclass(frozen=True)
class LiveLimits:
    max_ahead_s: float
    idle_s: float


def pcm_layout(config: asr_pb2.TranscribeLiveConfig) -> audio.PcmStream:
    """The decoder of the audio messages, after checking config.pcm_format field by field."""
    if not config.HasField("pcm_format"):
        raise InvalidArgument(
            "config.pcm_format is missing: give sample_rate_hz, channels and encoding of the audio messages"
        )
    layout = config.pcm_format
    if layout.data:
        raise InvalidArgument("config.pcm_format.data must be empty: audio travels in the `audio` messages")
    rate = layout.sample_rate_hz
    if not audio.MIN_RATE <= rate <= audio.MAX_RATE:
        raise InvalidArgument(
            f"config.pcm_format.sample_rate_hz is {rate}; supported rates are {audio.MIN_RATE}..{audio.MAX_RATE} Hz"
        )
    if not 0 <= layout.channels <= audio.MAX_CHANNELS:
        raise InvalidArgument(
            f"config.pcm_format.channels is {layout.channels}; it must be 0..{audio.MAX_CHANNELS} (0 is mono)"
        )
    encoding = audio.pcm_encoding(layout.encoding)
    if not encoding:
        raise InvalidArgument(
            "config.pcm_format.encoding is unset: PCM_ENCODING_S16LE, PCM_ENCODING_S32LE or PCM_ENCODING_F32LE"
        )
    return audio.PcmStream(sample_rate_hz=rate, channels=layout.channels, encoding=encoding)


class LiveTranscription:
    """One TranscribeLive call after its config: `responses()` is what the servicer yields."""

    def __init__(
        self,
        config: asr_pb2.TranscribeLiveConfig,
        requests: AsyncIterator[asr_pb2.TranscribeLiveRequest],
        recognizer: StreamingRecognizer,
        limits: LiveLimits,
    ) -> None:
        if len(config.session_id) > MAX_SESSION_ID:
            raise InvalidArgument(
                f"config.session_id is {len(config.session_id)} characters; at most {MAX_SESSION_ID}"
            )
        self.pcm = pcm_layout(config)
        options = convert.transcribe_options(config.options)
        self.session_id = config.session_id
        self.stream: OnlineStream = recognizer.create_stream(options, session_id=config.session_id)
        self.recognizer = recognizer
        self.limits = limits
        self._requests = requests
        self._wake = asyncio.Event()
        self._audio_messages = 0
        self._decode_ms = 0.0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        requests: AsyncIterator[asr_pb2.TranscribeLiveRequest],
        recognizer: StreamingRecognizer,
        limits: LiveLimits,
    ) -> LiveTranscription:
        """Reads the first message, which must be the config."""
        first = await _next(requests, limits.idle_s, "before `config`")
        if first is None:
            raise InvalidArgument("TranscribeLive: the stream was empty; the first message must be `config`")
        part = first.WhichOneof("part")
        if part != "config":
            raise InvalidArgument(
                f"TranscribeLive: the first message must be `config` (session_id, options, pcm_format), "
                f"got `{part or 'nothing'}`"
            )
        return cls(first.config, requests, recognizer, limits)

    # ---------------------------------------------------------------- reading

    async def _read(self) -> None:
        while not self.stream.finished:
            message = await _next(self._requests, self.limits.idle_s, self._where())
            if message is None:
                raise InvalidArgument(
                    f"TranscribeLive: the request stream closed {self._where()} without `end`; send "
                    "TranscribeLiveRequest.end when the segment is complete"
                )
            part = message.WhichOneof("part")
            if part == "audio":
                self._accept(message.audio)
            elif part == "end":
                self._finish(message.end)
            elif part == "config":
                raise InvalidArgument("TranscribeLive: `config` was sent twice; only the first message is one")
            else:
                raise InvalidArgument(f"TranscribeLive: a message {self._where()} sets no part (config, audio or end)")
            self._wake.set()
        # After `end` the client half-closes; anything else is a mistake.
        if await _next(self._requests, None, "") is not None:
            raise InvalidArgument("TranscribeLive: a message came after `end`; `end` is the last message")

    def _accept(self, data: bytes) -> None:
        self._audio_messages += 1
        mark = time.perf_counter()
        try:
            samples = self.pcm.decode(data)
        except InvalidArgument as exc:
            raise InvalidArgument(f"audio message {self._audio_messages}: {exc.message}") from None
        self.stream.accept_waveform(samples)
        self._decode_ms += (time.perf_counter() - mark) * 1000.0
        ahead_s = self.stream.samples_ahead / SAMPLE_RATE
        if ahead_s > self.limits.max_ahead_s:
            raise ResourceExhausted(
                f"TranscribeLive: the client is {ahead_s:.1f} s of audio ahead of the encoder (the limit is "
                f"{self.limits.max_ahead_s:g} s, MUAALEM_ASR_STREAM_MAX_AHEAD_S); send audio at the pace it is "
                "recorded, keeping progress.received_s - progress.computed_s under the limit"
            )

    def _finish(self, end: asr_pb2.TranscribeLiveEnd) -> None:
        self.stream.accept_waveform(self.pcm.flush())
        total = None
        if end.HasField("segment_samples"):
            sent = self.pcm.frames_in
            if not 0 < end.segment_samples <= sent:
                raise InvalidArgument(
                    f"end.segment_samples is {end.segment_samples}; it must be 1..{sent} (the samples sent)"
                )
            total = min(self.pcm.output_samples(end.segment_samples), self.stream.received_samples)
        self.stream.input_finished(total)

    def _where(self) -> str:
        return f"after {self._audio_messages} audio messages ({self.stream.received_samples / SAMPLE_RATE:.2f} s)"

    # ---------------------------------------------------------------- answering

    async def responses(self) -> AsyncGenerator[asr_pb2.TranscribeLiveResponse, None]:
        tracing.set_attributes(**{"muaalem.session_id": self.session_id})
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="transcribe-live-reader")
        try:
            while True:
                # Both taken before decode: audio or `end` that arrives while it runs wakes the
                # wait, so every run of windows, the last one included, is answered with progress.
                self._wake.clear()
                finished = self.stream.finished
                if await self._until(self.recognizer.decode(self.stream)):
                    yield asr_pb2.TranscribeLiveResponse(progress=self._progress())
                    continue
                if finished:
                    break
                await self._until(self._wake.wait())
            result = await self._until(self.recognizer.result(self.stream))
        finally:
            await self._stop_reader()
        stats = self.stream.stats
        log.info(
            "live segment transcribed",
            extra={
                "session": self.session_id,
                "audio_s": round(result.audio_duration_s, 3),
                "windows": stats.windows,
                "model_ms": round(stats.model_ms, 1),
                "after_end_ms": round(dict(result.timings).get("after_end", 0.0), 1),
            },
        )
        tracing.set_attributes(audio_seconds=round(result.audio_duration_s, 3), batch_size=result.batch_size)
        yield asr_pb2.TranscribeLiveResponse(
            transcription=convert.transcription(result, before=[("decode_audio", self._decode_ms)])
        )

    async def _stop_reader(self) -> None:
        """The reader ends at the client's half-close, which follows `end`: it is waited for, not
        cancelled (a read cancelled while grpc's aio layer is in it crashed the asr process,
        segfault in cygrpc, when the gateway ended its calls this way); only a reader still
        blocked after READER_GRACE_S (a client that never half-closes, an error before `end`) is
        cancelled."""
        assert self._reader is not None
        if not self._reader.done():
            await asyncio.wait({self._reader}, timeout=READER_GRACE_S)
        if not self._reader.done():
            self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    def _progress(self) -> asr_pb2.TranscribeLiveProgress:
        frames = self.stream.frames_computed
        return asr_pb2.TranscribeLiveProgress(
            frames_computed=frames,
            computed_s=frames * self.stream.geometry.frame_duration_s,
            received_s=self.stream.received_samples / SAMPLE_RATE,
            windows=self.stream.stats.windows,
        )

    async def _until(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless the reader fails first: then the reader's error, and `work`
        (windows waiting in the batcher among them) cancelled."""
        assert self._reader is not None
        task = asyncio.ensure_future(work)
        try:
            while True:
                reader = self._reader
                error = reader.exception() if reader.done() and not reader.cancelled() else None
                if error is not None:
                    raise error
                waiting: set[asyncio.Future[object]] = {task} if reader.done() else {task, reader}  # type: ignore[arg-type]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


async def _next(
    requests: AsyncIterator[asr_pb2.TranscribeLiveRequest], idle_s: float | None, where: str
) -> asr_pb2.TranscribeLiveRequest | None:
    """The next message, None when the client has half-closed."""
    try:
        return await asyncio.wait_for(anext(requests), idle_s)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise DeadlineExceeded(
            f"TranscribeLive: no message for {idle_s:g} s {where} (MUAALEM_ASR_STREAM_IDLE_S); a live "
            "stream sends audio as it is recorded and `end` when the segment is complete"
        ) from None


async def transcribe_live(
    requests: AsyncIterable[asr_pb2.TranscribeLiveRequest], recognizer: StreamingRecognizer, limits: LiveLimits
) -> AsyncGenerator[asr_pb2.TranscribeLiveResponse, None]:
    """The whole call: what the servicer yields for `requests`."""
    # grpc hands the servicer an async iterable; anext needs its iterator.
    call = await LiveTranscription.open(aiter(requests), recognizer, limits)
    # Closing this generator (the caller gone between two answers) must close the inner one
    # now, not at garbage collection: its `finally` stops the reader task.
    async with contextlib.aclosing(call.responses()) as responses:
        async for response in responses:
            yield response
