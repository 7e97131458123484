"""The compressed formats learners upload, made here with PyAV (the decoder's own library):
m4a (AAC in MP4, as phones record), Opus in Ogg and in WebM (browsers' MediaRecorder); and the
sample-rate floor: under 8 kHz is refused with INVALID_ARGUMENT naming the rate."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from services.common.audio import MIN_RATE, PcmStream, decode_bytes, decode_message, decode_pcm
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

RATE = 16_000


def tone(seconds: float = 2.0, hz: float = 440.0, rate: int = RATE) -> npt.NDArray[np.float32]:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def encode(samples: npt.NDArray[np.float32], container: str, codec: str, rate: int, channels: int = 1) -> bytes:
    """`samples` (16 kHz mono) encoded by FFmpeg through PyAV: resampled to the codec's `rate`,
    cut into the codec's frame size, muxed into `container`."""
    layout = "mono" if channels == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout)
        source = av.AudioFrame.from_ndarray(
            np.repeat(samples[None, :], channels, axis=0), format="fltp", layout=layout
        )
        source.sample_rate = RATE
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout=layout, rate=rate)
        fifo = av.AudioFifo()
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            fifo.write(frame)
        size = stream.codec_context.frame_size or 1024
        pts = 0
        while fifo.samples:
            frame = fifo.read(min(size, fifo.samples))
            frame.pts, pts = pts, pts + frame.samples
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def dominant_hz(samples: npt.NDArray[np.float32]) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum)) * RATE / len(samples)


@pytest.mark.parametrize(
    ("name", "container", "codec", "rate", "channels", "formats"),
    [
        ("recitation.m4a", "ipod", "aac", 44_100, 1, {"mov"}),
        ("recitation-stereo.m4a", "mp4", "aac", 48_000, 2, {"mov"}),
        ("recitation.opus", "ogg", "libopus", 48_000, 1, {"ogg"}),
        ("recitation.webm", "webm", "libopus", 48_000, 2, {"matroska"}),
    ],
)
def test_compressed_uploads_decode_to_the_same_sound(
    name: str, container: str, codec: str, rate: int, channels: int, formats: set[str]
) -> None:
    original = tone(2.0, 440.0)
    data = encode(original, container, codec, rate, channels)
    decoded = decode_bytes(data, name_hint=name, max_duration_s=10)
    assert decoded.source_rate == rate and decoded.source_channels == channels
    assert decoded.source_format in formats
    assert decoded.sample_rate == RATE and decoded.samples.dtype == np.float32
    # Encoders pad (AAC's priming, Opus's pre-skip trimmed or not): within 50 ms of the original.
    assert abs(decoded.duration_s - 2.0) < 0.05, decoded.duration_s
    assert abs(dominant_hz(decoded.samples) - 440.0) < 2.0
    # The level survives (RMS of the middle second; a 0.3 sine's is 0.212).
    middle = decoded.samples[RATE // 2 : RATE * 3 // 2]
    assert 0.19 < float(np.sqrt(np.mean(middle**2))) < 0.23
    # The same bytes as an Audio message (what the gateway and the asr decode).
    message = decode_message(common_pb2.Audio(content=data, name_hint=name), max_duration_s=10, min_duration_s=0.1)
    assert np.array_equal(message.samples, decoded.samples)


def test_a_compressed_file_longer_than_the_limit_is_refused_while_decoding() -> None:
    data = encode(tone(6.0), "ipod", "aac", 44_100)
    with pytest.raises(InvalidArgument, match=r"recitation\.m4a.*over the limit of 3 s"):
        decode_bytes(data, name_hint="recitation.m4a", max_duration_s=3)


@pytest.mark.parametrize("rate", [4_000, 6_000, 7_999])
def test_rates_under_8_khz_are_refused_naming_the_rate(rate: int) -> None:
    samples = tone(1.0, 300.0, rate)
    wav = io.BytesIO()
    sf.write(wav, samples, rate, format="WAV")
    with pytest.raises(InvalidArgument, match=rf"sample rate of {rate} Hz; supported rates are 8000\.\.") as caught:
        decode_bytes(wav.getvalue(), name_hint="phone.wav")
    assert "phone.wav" in str(caught.value) and "16 kHz" in str(caught.value)
    with pytest.raises(InvalidArgument, match=rf"sample rate of {rate} Hz"):
        decode_pcm((samples * 32767).astype("<i2").tobytes(), sample_rate_hz=rate, channels=1, encoding="S16LE")


def test_8_khz_is_the_floor_and_is_accepted() -> None:
    assert MIN_RATE == 8_000
    samples = tone(1.0, 300.0, 8_000)
    decoded = decode_pcm(samples.astype("<f4").tobytes(), sample_rate_hz=8_000, channels=1, encoding="F32LE")
    assert decoded.source_rate == 8_000 and abs(decoded.duration_s - 1.0) < 0.01


@pytest.mark.parametrize(
    ("rate", "channels", "encoding"), [(44_100, 2, "S16LE"), (16_000, 1, "F32LE"), (8_000, 3, "S32LE")]
)
def test_pcm_decoded_in_pieces_is_the_whole_pcm_decoded(rate: int, channels: int, encoding: str) -> None:
    """TranscribeLive decodes and resamples raw PCM as it arrives: laid end to end, the pieces
    are the samples decode_pcm gives for the whole payload."""
    rng = np.random.default_rng(rate)
    frames = np.clip(0.3 * rng.standard_normal((int(1.7 * rate), channels)), -1, 1)
    dtype, scale = {"S16LE": ("<i2", 32767), "S32LE": ("<i4", 2**31 - 1), "F32LE": ("<f4", 1)}[encoding]
    data = (frames * scale).astype(dtype).tobytes()
    whole = decode_pcm(data, sample_rate_hz=rate, channels=channels, encoding=encoding).samples
    stream = PcmStream(sample_rate_hz=rate, channels=channels, encoding=encoding)
    frame_bytes = np.dtype(dtype).itemsize * channels
    sizes = [1, 333, 4096, 7]
    pieces, offset, index = [], 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)] * frame_bytes
        pieces.append(stream.decode(data[offset : offset + size]))
        offset, index = offset + size, index + 1
    pieces.append(stream.flush())
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert stream.frames_in == frames.shape[0] and stream.output_samples(rate) == RATE
    with pytest.raises(InvalidArgument, match=f"not a whole number of {channels}-channel {encoding} frames"):
        stream.decode(b"\x00" * (frame_bytes + 1))
