"""Helpers for the ASR serving tests: tiny dev checkpoints written once per test session (plain
functions, usable where a fixture is not, e.g. inside a test that builds several engines), engine
configurations for tests, and long recitations made from the shared recordings."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

from services.asr.config import AsrConfig
from tests.asr.conftest import load_recording
from tests.conftest import AUDIO_DIR, FIXTURES_DIR

__all__ = [
    "AUDIO_DIR",
    "FIXTURES_DIR",
    "RATE",
    "config",
    "demo_config",
    "dev_checkpoints",
    "long_recitation",
    "recording",
]

RATE = 16_000
# The shared recordings as 16 kHz mono float32 (cached, read-only).
recording = load_recording


@functools.cache
def dev_checkpoints() -> tuple[Path, Path]:
    """(tiny multi-level CTC checkpoint, tiny segmenter), random weights, seed 0."""
    from services.asr.devmodel import write_dev_checkpoint, write_dev_segmenter

    root = Path(tempfile.mkdtemp(prefix="muaalem-asr-tests-"))
    atexit.register(shutil.rmtree, root, True)
    return write_dev_checkpoint(root / "asr", size="tiny"), write_dev_segmenter(root / "segmenter", size="tiny")


def config(**overrides: str) -> AsrConfig:
    model, segmenter = dev_checkpoints()
    environ = {
        "MUAALEM_ASR_MODEL": str(model),
        "MUAALEM_SEGMENTER_MODEL": str(segmenter),
        "MUAALEM_ASR_DEVICE": "cpu",
        # Pinned: `auto` depends on the CPU (bfloat16 where it is native), and these tests compare
        # with float32 models; tests/asr/test_openvino.py covers auto's choice.
        "MUAALEM_ASR_PRECISION": "float32",
        "MUAALEM_ASR_MAX_QUEUE_DELAY_MS": "5",
    }
    environ.update(overrides)
    return AsrConfig.from_env(environ)


def demo_config(**overrides: str) -> AsrConfig:
    """The committed demo checkpoint (a model that hears, small enough for tests), torch float32,
    no segmenter."""
    from services.asr.checkpoint import DEMO_CHECKPOINT

    environ = {
        "MUAALEM_ASR_MODEL": str(DEMO_CHECKPOINT),
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_ASR_DEVICE": "cpu",
        "MUAALEM_ASR_BACKEND": "torch",
        "MUAALEM_ASR_PRECISION": "float32",
        "MUAALEM_ASR_MAX_QUEUE_DELAY_MS": "5",
    }
    environ.update(overrides)
    return AsrConfig.from_env(environ)


def long_recitation(seconds: float) -> np.ndarray:
    """Real recitation cut or repeated to `seconds` (test.wav, 002282_15.wav, the Fatiha)."""
    pieces = [recording("fatiha_long_track.wav"), recording("002282_15.wav"), recording("test.wav")]
    joined = np.concatenate(pieces)
    needed = int(seconds * RATE)
    reps = -(-needed // joined.size)
    return np.ascontiguousarray(np.tile(joined, reps)[:needed])
