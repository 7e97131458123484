"""A 45 s recording run in 20 s windows against the same recording run whole.

What must hold exactly: the frame count and timestamps of the whole run, and every stitched
frame equal to the frame of the window it was taken from. What cannot: with random dev
weights, chunked and whole outputs differ on every frame, because a window's features are
normalised over the window rather than the whole recording and the encoder attends over its
whole input. The bound asserted is relative: chunked output must be much closer to the whole
run of the same audio than the whole run is to different audio, which holds only if
chunking keeps what the input says. Measured (tiny dev model, seed 0): mean total-variation
distance chunked vs whole 0.13 on the phoneme level against 0.33 between different audio
(ratio 0.41; 0.36-0.49 over the ten sifa levels); frame argmax agreement 0.48 against 0.15.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from services.asr import chunking
from services.asr.decode import greedy_decode
from services.asr.engine import AsrEngine, TranscribeOptions
from tests.asr import support

RATE = support.RATE


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsrEngine]:
    started = AsrEngine(support.config(MUAALEM_SEGMENTER_MODEL=""))
    await started.start()
    yield started
    await started.close()


def whole(samples: np.ndarray) -> chunking.ChunkPlan:
    return chunking.ChunkPlan(samples.size, (chunking.Piece(0, samples.size),), "none")


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.abs(np.exp(a) - np.exp(b)).sum(axis=1).mean())


async def test_45_s_in_windows_against_the_whole_run(engine: AsrEngine) -> None:
    wav = support.long_recitation(45)
    chunked = await engine.transcribe(wav, TranscribeOptions(include_log_probs=True))
    assert chunked.chunking == "windows"
    assert chunked.segments == ((0.0, 20.0), (19.6, 39.6), (25.0, 45.0))
    unchunked, _ = await engine.run_plan(wav, whole(wav))
    assert chunked.num_frames == unchunked["phonemes"].shape[0] == engine.geometry.output_frames(wav.size) == 1125

    # Every stitched frame is exactly the frame of the window it came from, at its own time.
    owners = []
    for start_s, end_s in chunked.segments:
        piece = wav[round(start_s * RATE) : round(end_s * RATE)]
        window, _ = await engine.run_plan(piece, whole(piece))
        owners.append((round(start_s / 0.04), window["phonemes"]))
    stitched = chunked.log_probs["phonemes"]
    # Windows cover frames 0-500, 490-990 and 625-1125. In the first overlap the switch is at its
    # middle; the last window's right edge is the recording's end, so it takes over from the
    # second where it is as far from its left edge as the second is from its right (807/808).
    boundaries = [0, 495, 808, 1125]
    for (first, alone), lo, hi in zip(owners, boundaries, boundaries[1:], strict=False):
        # Equal up to float rounding: the three windows ran as one batch, each here alone.
        np.testing.assert_allclose(stitched[lo:hi], alone[lo - first : hi - first], atol=1e-5)

    other = np.ascontiguousarray(support.long_recitation(90)[45 * RATE :])
    different, _ = await engine.run_plan(other, whole(other))
    for level in engine.vocabulary.levels:
        near = total_variation(chunked.log_probs[level], unchunked[level])
        far = total_variation(different[level], unchunked[level])
        assert near < 0.6 * far, f"{level}: chunked vs whole {near:.3f}, different audio {far:.3f}"
    agree = (stitched.argmax(1) == unchunked["phonemes"].argmax(1)).mean()
    chance = (different["phonemes"].argmax(1) == unchunked["phonemes"].argmax(1)).mean()
    assert agree > 2 * chance

    whole_decode = greedy_decode(unchunked, engine.vocabulary, skip_sifat=True).phonemes
    other_decode = greedy_decode(different, engine.vocabulary, skip_sifat=True).phonemes
    assert Levenshtein.normalized_distance(chunked.decode.phonemes, whole_decode) < Levenshtein.normalized_distance(
        other_decode, whole_decode
    )
