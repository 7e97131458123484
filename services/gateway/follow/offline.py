"""A whole recording followed at once (Assess of a file): segmented at its pauses by the live
sessions' segmenter with the same settings, then fed to the follower segment by segment, as a
live session would have fed it while the learner recited."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.common.audio import TARGET_RATE
from services.gateway.follow.follower import RecitationFollower
from services.gateway.live.encoding import LiveEncoder
from services.gateway.live.segmenter import Segment, Segmenter
from services.gateway.live.settings import LiveSettings


def segments_of(samples: npt.NDArray[np.float32], settings: LiveSettings) -> list[Segment]:
    """The segments a live session of the same audio closes (the segmenter works frame by
    frame, so how the audio is cut into chunks makes no difference)."""
    segmenter = Segmenter(settings)
    segments: list[Segment] = []
    for offset in range(0, len(samples), TARGET_RATE):
        segments.extend(segmenter.feed(samples[offset : offset + TARGET_RATE]))
    segments.extend(segmenter.finish())
    return segments


async def follow_all(
    follower: RecitationFollower, segments: list[Segment], encoder: LiveEncoder | None = None
) -> None:
    """Follows every segment, then retries those the asr could not decode; the events a live
    session would send are not needed: the composition holds what they said. With an encoder,
    each segment is encoded as a live session encodes it while recited (the same decode, so the
    same Assessment)."""
    for segment in segments:
        if encoder is not None:
            decoded = await encoder.encoded(follower.recording, segment)
            if decoded is not None:
                await follower.calls.observe(decoded.transcription)
                follower.remember(segment.start_s, segment.end_s, decoded)
        await follower.follow(segment)
    await follower.flush()
    await follower.retry_failed()
