"""muaalem.v1.AsrService over the ASR engine: convert, call, convert back.

Every method also works with `context=None` (the gateway's in-process mode calls them
directly); errors are MeshErrors, which the server interceptor turns into statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc

from services.asr import convert
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine, Transcription
from services.asr.live import LiveLimits, transcribe_live
from services.common import audio, tracing
from services.common.errors import InvalidArgument
from services.common.pb import asr_pb2, asr_pb2_grpc
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings

SERVICE_NAME = asr_pb2.DESCRIPTOR.services_by_name["AsrService"].full_name

# A streamed file's duration is known only once decoded, so while receiving, its size is held
# to what the duration limit takes as 48 kHz 16-bit stereo PCM: any compressed file and any
# smaller layout fits, and no caller can make the server buffer without bound.
FILE_STREAM_BYTES_PER_S = 48_000 * 2 * 2


class AsrServicer(asr_pb2_grpc.AsrServiceServicer):
    def __init__(self, engine: AsrEngine) -> None:
        self.engine = engine

    @property
    def config(self) -> AsrConfig:
        return self.engine.config

    async def Transcribe(
        self, request: asr_pb2.TranscribeRequest, context: grpc.aio.ServicerContext | None
    ) -> asr_pb2.TranscribeResponse:
        minimum = self.engine.min_duration_s
        options = convert.transcribe_options(request.options)
        mark = time.perf_counter()
        decoded = await asyncio.to_thread(
            audio.decode_message, request.audio, max_duration_s=self.config.max_audio_s, min_duration_s=minimum
        )
        decode_ms = (time.perf_counter() - mark) * 1000.0
        result = await self.engine.transcribe(decoded.samples, options)
        _trace_transcription(result)
        return asr_pb2.TranscribeResponse(
            transcription=convert.transcription(result, before=[("decode_audio", decode_ms)])
        )

    async def TranscribeStream(
        self,
        request_iterator: AsyncIterator[asr_pb2.TranscribeStreamRequest],
        context: grpc.aio.ServicerContext | None,
    ) -> asr_pb2.TranscribeStreamResponse:
        minimum = self.engine.min_duration_s
        limit_s = self.config.max_stream_audio_s
        header: asr_pb2.TranscribeStreamHeader | None = None
        budget = 0
        payload = bytearray()
        async for message in request_iterator:
            part = message.WhichOneof("part")
            if header is None:
                if part != "header":
                    raise InvalidArgument(
                        "TranscribeStream: the first message must be the header (options and audio layout)"
                    )
                header = message.header
                budget = self._stream_budget(header, limit_s)
                continue
            if part == "header":
                raise InvalidArgument("TranscribeStream: the header was sent twice; only the first message is one")
            payload += message.chunk
            if len(payload) > budget:
                raise InvalidArgument(
                    f"streamed audio passed the limit of {limit_s:.0f} s (MUAALEM_MAX_STREAM_AUDIO_S) "
                    f"after {len(payload)} bytes; the upload was stopped"
                )
        if header is None:
            raise InvalidArgument("TranscribeStream: the stream was empty (no header, no audio)")
        options = convert.transcribe_options(header.options)
        mark = time.perf_counter()
        decoded = await asyncio.to_thread(self._decode_stream, header, bytes(payload), limit_s, minimum)
        decode_ms = (time.perf_counter() - mark) * 1000.0
        result = await self.engine.transcribe(decoded.samples, options, max_duration_s=limit_s)
        _trace_transcription(result)
        return asr_pb2.TranscribeStreamResponse(
            transcription=convert.transcription(result, before=[("decode_audio", decode_ms)])
        )

    @staticmethod
    def _stream_budget(header: asr_pb2.TranscribeStreamHeader, limit_s: float) -> int:
        if not header.HasField("pcm_format"):
            return int(limit_s * FILE_STREAM_BYTES_PER_S)
        per_second = audio.pcm_bytes_per_second(header.pcm_format)
        if per_second == 0:
            raise InvalidArgument(
                "TranscribeStream: pcm_format needs sample_rate_hz > 0 and an encoding "
                "(PCM_ENCODING_S16LE, PCM_ENCODING_S32LE or PCM_ENCODING_F32LE)"
            )
        return int(limit_s * per_second)

    @staticmethod
    def _decode_stream(
        header: asr_pb2.TranscribeStreamHeader, payload: bytes, limit_s: float, minimum: float
    ) -> audio.DecodedAudio:
        if header.HasField("pcm_format"):
            return audio.decode_raw_pcm(
                header.pcm_format, payload, name_hint=header.name_hint, max_duration_s=limit_s, min_duration_s=minimum
            )
        return audio.decode_bytes(payload, name_hint=header.name_hint, max_duration_s=limit_s, min_duration_s=minimum)

    async def TranscribeLive(
        self,
        request_iterator: AsyncIterator[asr_pb2.TranscribeLiveRequest],
        context: grpc.aio.ServicerContext | None,
    ) -> AsyncIterator[asr_pb2.TranscribeLiveResponse]:
        limits = LiveLimits(max_ahead_s=self.config.stream_max_ahead_s, idle_s=self.config.stream_idle_s)
        async with contextlib.aclosing(transcribe_live(request_iterator, self.engine.streaming, limits)) as answers:
            async for response in answers:
                yield response

    async def Segment(
        self, request: asr_pb2.SegmentRequest, context: grpc.aio.ServicerContext | None
    ) -> asr_pb2.SegmentResponse:
        minimum = self.engine.min_duration_s
        options = convert.segment_options(request.options)
        decoded = await asyncio.to_thread(
            audio.decode_message, request.audio, max_duration_s=self.config.max_audio_s, min_duration_s=minimum
        )
        result = await self.engine.segment(decoded.samples, options)
        return convert.segment_response(result)

    async def GetModelInfo(
        self, request: asr_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext | None
    ) -> asr_pb2.GetModelInfoResponse:
        return convert.model_info(self.engine.model_info())


def _trace_transcription(result: Transcription) -> None:
    tracing.set_attributes(
        audio_seconds=round(result.audio_duration_s, 3),
        batch_size=result.batch_size,
        queue_ms=round(result.queue_ms, 3),
        **{"muaalem.asr.chunking": result.chunking, "muaalem.asr.frames": result.num_frames},
    )


def binding(servicer: AsrServicer) -> ServiceBinding:
    return ServiceBinding(SERVICE_NAME, lambda server: asr_pb2_grpc.add_AsrServiceServicer_to_server(servicer, server))


def build_server(config: AsrConfig, settings: ServerSettings) -> tuple[MeshServer, AsrEngine]:
    """The ASR server: NOT_SERVING until the engine has loaded its model (the on_start hook)."""
    engine = AsrEngine(config)
    server = MeshServer(settings, [binding(AsrServicer(engine))], on_start=engine.start, on_stop=engine.close)
    return server, engine
