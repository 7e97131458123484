"""Incremental decoding of a live session's audio bytes into 16 kHz mono float32.

Raw PCM is converted chunk by chunk with a streaming resampler (soxr), so no sample waits for
a later chunk beyond the resampler's short delay. Ogg/Opus and WebM/Opus (what browsers'
MediaRecorder writes) are demuxed by PyAV on a worker thread that reads from a pipe the chunks
are written into: the container is parsed once, as it arrives, not re-read per chunk.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

import numpy as np
import numpy.typing as npt

from services.common.audio import MAX_CHANNELS, TARGET_RATE, pcm_encoding
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2

FloatArray = npt.NDArray[np.float32]

MIN_LIVE_RATE = 8_000
MAX_LIVE_RATE = 192_000
_PCM_DTYPES: dict[str, tuple[str, float]] = {
    "S16LE": ("<i2", 1.0 / 32768.0),
    "S32LE": ("<i4", 1.0 / 2147483648.0),
    "F32LE": ("<f4", 1.0),
}
_EMPTY = np.zeros(0, dtype=np.float32)


class LiveDecoder(Protocol):
    def feed(self, data: bytes) -> FloatArray: ...

    def finish(self) -> FloatArray: ...

    def close(self) -> None: ...


class _Resampler:
    """Mono float32 at any rate in, 16 kHz out, across calls."""

    def __init__(self, rate: int) -> None:
        self._stream = None
        if rate != TARGET_RATE:
            import soxr

            self._stream = soxr.ResampleStream(rate, TARGET_RATE, 1, dtype="float32", quality="HQ")

    def __call__(self, mono: FloatArray, last: bool = False) -> FloatArray:
        if self._stream is None:
            return mono
        return np.asarray(self._stream.resample_chunk(mono, last=last), dtype=np.float32)


class PcmDecoder:
    """Raw interleaved PCM in the layout the session's config states."""

    def __init__(self, layout: common_pb2.RawPcm) -> None:
        encoding = pcm_encoding(layout.encoding)
        if not encoding:
            raise InvalidArgument("config.pcm.encoding must be set: PCM_ENCODING_S16LE, _S32LE or _F32LE")
        if not MIN_LIVE_RATE <= layout.sample_rate_hz <= MAX_LIVE_RATE:
            raise InvalidArgument(
                f"config.pcm.sample_rate_hz {layout.sample_rate_hz} is outside "
                f"{MIN_LIVE_RATE}..{MAX_LIVE_RATE} Hz (speech needs at least 8 kHz)"
            )
        self.channels = layout.channels or 1
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidArgument(f"config.pcm.channels {layout.channels} is outside 1..{MAX_CHANNELS}")
        if layout.data:
            raise InvalidArgument("config.pcm.data must be empty: audio follows in AssessLiveRequest.audio messages")
        dtype, self._scale = _PCM_DTYPES[encoding]
        self._dtype = np.dtype(dtype)
        self.encoding = encoding
        self.frame_bytes = self._dtype.itemsize * self.channels
        self._resample = _Resampler(layout.sample_rate_hz)

    def feed(self, data: bytes) -> FloatArray:
        # A chunk that splits a sample frame is a client bug (a wrong layout, most often):
        # refusing it names the problem instead of decoding noise from shifted bytes.
        if len(data) % self.frame_bytes:
            raise InvalidArgument(
                f"an audio chunk of {len(data)} bytes is not a whole number of {self.channels}-channel "
                f"{self.encoding} frames ({self.frame_bytes} bytes each)"
            )
        samples = np.frombuffer(data, dtype=self._dtype).astype(np.float32) * np.float32(self._scale)
        if not np.isfinite(samples).all():
            raise InvalidArgument("an audio chunk contains NaN or infinite samples")
        mono = samples.reshape(-1, self.channels).mean(axis=1).astype(np.float32)
        return self._resample(mono)

    def finish(self) -> FloatArray:
        return self._resample(_EMPTY, last=True)

    def close(self) -> None:
        return None


class _Pipe:
    """A blocking file-like reader over chunks written from another thread (PyAV reads it)."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        self._pending = b""
        self._ended = False

    def write(self, data: bytes) -> None:
        self._chunks.put(data)

    def end(self) -> None:
        self._chunks.put(None)

    def read(self, size: int = -1) -> bytes:
        while not self._pending and not self._ended:
            chunk = self._chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._pending = chunk
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class ContainerDecoder:
    """Ogg/Opus or WebM/Opus, demuxed and decoded on a worker thread as bytes arrive."""

    def __init__(self, container: int) -> None:
        formats: dict[int, str] = {gateway_pb2.LIVE_CONTAINER_OGG: "ogg", gateway_pb2.LIVE_CONTAINER_WEBM: "webm"}
        if container not in formats:
            raise InvalidArgument("config.container must be LIVE_CONTAINER_OGG or LIVE_CONTAINER_WEBM")
        self.format = formats[container]
        self._pipe = _Pipe()
        self._lock = threading.Lock()
        self._out: list[FloatArray] = []
        self._error: Exception | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{self.format}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import av

        try:
            # The format is named: probing would read ahead more than a live client has sent.
            with av.open(self._pipe, mode="r", format="matroska" if self.format == "webm" else "ogg") as box:
                if not box.streams.audio:
                    raise InvalidArgument(f"the {self.format} stream has no audio track")
                stream = box.streams.audio[0]
                resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
                for frame in box.decode(stream):
                    for converted in resampler.resample(frame):
                        self._push(converted.to_ndarray().reshape(-1).astype(np.float32))
                for converted in resampler.resample(None):
                    self._push(converted.to_ndarray().reshape(-1).astype(np.float32))
        except InvalidArgument as exc:
            self._error = exc
        except Exception as exc:  # PyAV's errors: the bytes are not the stated container
            self._error = InvalidArgument(f"the audio is not a readable {self.format}/opus stream: {exc}")
        finally:
            self._done.set()
            # Unblock nothing further: drain what a failed parse left unread.

    def _push(self, block: FloatArray) -> None:
        with self._lock:
            self._out.append(block)

    def _take(self) -> FloatArray:
        if self._error is not None:
            raise self._error
        with self._lock:
            blocks, self._out = self._out, []
        return np.concatenate(blocks) if blocks else _EMPTY

    def feed(self, data: bytes) -> FloatArray:
        if not self._done.is_set():
            self._pipe.write(bytes(data))
        return self._take()

    def finish(self) -> FloatArray:
        self._pipe.end()
        self._done.wait(timeout=30)
        return self._take()

    def close(self) -> None:
        self._pipe.end()


def decoder_for(config: gateway_pb2.LiveConfig) -> LiveDecoder:
    which = config.WhichOneof("layout")
    if which == "pcm":
        return PcmDecoder(config.pcm)
    if which == "container":
        return ContainerDecoder(config.container)
    raise InvalidArgument("config sets no audio layout: set config.pcm (raw PCM) or config.container (ogg/webm)")
