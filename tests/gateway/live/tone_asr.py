"""A stand-in AsrService whose posteriorgrams are known truth: the audio carries it.

Each phoneme of a test recitation is a tone whose pitch names the phoneme's vocabulary id,
separated from the next by a short silence; the stand-in reads the pitch of every 40 ms frame
back. Whatever window of the session the gateway sends, the stand-in returns the phonemes
that are really in it, with their frames, so the live logic (following, repeats, skips,
preludes, off-target) is tested through the real alignment and tajweed stages.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt
from quran_transcript import chunck_phonemes

from services.alignment.vocabulary import default_vocabulary
from services.common.audio import decode_message
from services.common.pb import asr_pb2, common_pb2
from services.common.tensors import to_proto

VOCAB = default_vocabulary()
ID_OF = {p: i for i, p in enumerate(VOCAB)}
RATE = 16000
FRAME_S = 0.04
FRAME = int(RATE * FRAME_S)
BASE_HZ = 300.0
STEP_HZ = 80.0
TONE_S = 0.12
GAP_S = 0.08


def tone_for(phonemes: str, amplitude: float = 0.3) -> npt.NDArray[np.float32]:
    """A recitation of `phonemes` in tones (no trailing pause)."""
    parts = []
    t = np.arange(int(TONE_S * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    for p in phonemes:
        freq = BASE_HZ + STEP_HZ * ID_OF[p]
        parts.append((amplitude * ramp * np.sin(2 * np.pi * freq * t)).astype(np.float32))
        parts.append(np.zeros(int(GAP_S * RATE), dtype=np.float32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def read_frames(samples: npt.NDArray[np.float32]) -> list[int]:
    """The vocabulary id of every 40 ms frame (0, the blank, for silence)."""
    ids = []
    window = np.hanning(FRAME)
    for k in range(len(samples) // FRAME):
        frame = samples[k * FRAME : (k + 1) * FRAME]
        if float(np.sqrt(np.mean(frame * frame))) < 0.05:
            ids.append(0)
            continue
        spectrum = np.abs(np.fft.rfft(frame * window))
        freq = float(np.argmax(spectrum)) * RATE / FRAME
        ident = round((freq - BASE_HZ) / STEP_HZ)
        ids.append(ident if 1 <= ident < len(VOCAB) else 0)
    return ids


class ToneAsr:
    """Transcribe and GetModelInfo, in-process (LocalStages calls them directly)."""

    model = common_pb2.ModelVersion(name="tone-stand-in", weights_digest="0" * 16, backend="numpy", device="cpu")

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        # Call numbers (1-based) that fail as if the stage were down.
        self.fail_calls: set[int] = set()
        # Call numbers whose posteriorgram keeps only 3 frames (too short for its decode).
        self.truncate_calls: set[int] = set()
        # Seconds each call takes, as a model would (0: at once).
        self.delay_s = 0.0

    async def Transcribe(self, request: asr_pb2.TranscribeRequest, context: Any) -> asr_pb2.TranscribeResponse:
        from services.common.errors import Unavailable

        self.calls += 1
        if self.down or self.calls in self.fail_calls:
            raise Unavailable("asr: the stand-in is switched off")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        audio = decode_message(request.audio, max_duration_s=1200, min_duration_s=0.0)
        frames = read_frames(audio.samples)
        n = max(len(frames), 1)
        log_probs = np.full((n, len(VOCAB)), -12.0, dtype=np.float32)
        for f, ident in enumerate(frames or [0]):
            log_probs[f, ident] = -0.001
        tokens: list[common_pb2.DecodedToken] = []
        previous = 0
        for f, ident in enumerate(frames):
            if ident and ident != previous:
                tokens.append(
                    common_pb2.DecodedToken(phoneme=VOCAB[ident], id=ident, prob=0.99, start_frame=f, end_frame=f + 1)
                )
            elif ident and tokens:
                tokens[-1].end_frame = f + 1
            previous = ident
        if self.calls in self.truncate_calls:
            log_probs, n = log_probs[:3], 3
        phonemes = "".join(t.phoneme for t in tokens)
        decode = common_pb2.Decode(phonemes=phonemes, tokens=tokens)
        decode.sifat.extend(common_pb2.Sifat() for _ in chunck_phonemes(phonemes)) if phonemes else None
        transcription = asr_pb2.Transcription(
            decode=decode,
            log_probs=[asr_pb2.LevelLogProbs(level="phonemes", log_probs=to_proto(log_probs, "float32"))],
            num_frames=n,
            frame_duration_s=FRAME_S,
            audio_duration_s=audio.duration_s,
            model_version=self.model,
        )
        return asr_pb2.TranscribeResponse(transcription=transcription)

    async def TranscribeStream(self, chunks: Any, context: Any) -> asr_pb2.TranscribeResponse:
        """What the gateway streams for a long recording (a live session's final): raw PCM."""
        header = asr_pb2.TranscribeStreamHeader()
        data = bytearray()
        async for part in chunks:
            if part.WhichOneof("part") == "header":
                header = part.header
            else:
                data += part.chunk
        pcm = common_pb2.RawPcm()
        pcm.CopyFrom(header.pcm_format)
        pcm.data = bytes(data)
        request = asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=pcm), options=header.options)
        return await self.Transcribe(request, context)

    async def GetModelInfo(self, request: asr_pb2.GetModelInfoRequest, context: Any) -> asr_pb2.GetModelInfoResponse:
        return asr_pb2.GetModelInfoResponse(model_version=self.model)
