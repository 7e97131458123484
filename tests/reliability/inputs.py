"""Bad (and unusual but valid) input, generated here: audio files, lying headers, requests.

Each case names what it sends, the status it must get and words its message must contain,
so that "the right outcome" is a fact a test checks rather than a claim. The cases live by
transport (unary_cases, stream_cases, http_cases) on top of builders; this module is the one
place the tests import them from.
"""

from __future__ import annotations

from tests.reliability.builders import (
    LOAD_TARGETS,
    STREAM_LIMIT_MB,
    WORDS,
    assess_request,
    pcm_request,
    recitation,
    recitation_wav,
    resampled,
    rotating_request,
    target,
    wav,
)
from tests.reliability.http_cases import HTTP_CASES, JSON, MULTIPART, HttpCase, multipart, request_json
from tests.reliability.stream_cases import STREAM_CASES, StreamCase, pcm_stream, wav_file_stream
from tests.reliability.unary_cases import UNARY_CASES, VALID_AUDIO, Case, ValidAudio

__all__ = [
    "HTTP_CASES",
    "JSON",
    "LOAD_TARGETS",
    "MULTIPART",
    "STREAM_CASES",
    "STREAM_LIMIT_MB",
    "UNARY_CASES",
    "VALID_AUDIO",
    "WORDS",
    "Case",
    "HttpCase",
    "StreamCase",
    "ValidAudio",
    "assess_request",
    "multipart",
    "pcm_request",
    "pcm_stream",
    "recitation",
    "recitation_wav",
    "request_json",
    "resampled",
    "rotating_request",
    "target",
    "wav",
    "wav_file_stream",
]
