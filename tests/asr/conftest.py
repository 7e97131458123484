"""Fixtures for the ASR model tests: tiny dev checkpoints (written once per session), loaded
models, and the shared recordings as 16 kHz mono float32."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.asr.checkpoint import CheckpointFiles, resolve_checkpoint
from services.asr.chunking import FrameGeometry
from services.asr.loading import geometry_of
from services.asr.modeling import FrameClassifier, MultiLevelCTC
from services.asr.weights import load_frame_classifier, load_multilevel_ctc
from services.common import audio
from tests.conftest import AUDIO_DIR


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.asr.devmodel import write_dev_checkpoint

    return write_dev_checkpoint(tmp_path_factory.mktemp("tiny-ctc"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_segmenter_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.asr.devmodel import write_dev_segmenter

    return write_dev_segmenter(tmp_path_factory.mktemp("tiny-segmenter"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_files(tiny_checkpoint: Path) -> CheckpointFiles:
    return resolve_checkpoint(str(tiny_checkpoint))


def geometry(files: CheckpointFiles) -> FrameGeometry:
    """The frame arithmetic serving uses for a checkpoint."""
    return geometry_of(files.config, files.preprocessor_config)


def output_lengths(geometry: FrameGeometry, valid_feature_frames: Iterable[Any]) -> list[int]:
    """Valid output frames per item (e.g. of `mask.sum(dim=1)`)."""
    return [geometry.output_frames_from_features(int(n)) for n in valid_feature_frames]


@pytest.fixture(scope="session")
def tiny_geometry(tiny_files: CheckpointFiles) -> FrameGeometry:
    return geometry(tiny_files)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, tiny_files: CheckpointFiles) -> Path:
    """The tiny checkpoint exported once to ONNX (float32) for every test that reads the graph."""
    from services.asr.export import export_onnx

    return export_onnx(tiny_files, tmp_path_factory.mktemp("tiny-onnx") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_model(tiny_files: CheckpointFiles) -> MultiLevelCTC:
    return load_multilevel_ctc(tiny_files, "cpu", "float32")


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_segmenter_checkpoint: Path) -> FrameClassifier:
    return load_frame_classifier(
        resolve_checkpoint(str(tiny_segmenter_checkpoint), "frame_classifier"), "cpu", "float32"
    )


_RECORDINGS: dict[str, np.ndarray] = {}


def load_recording(name: str) -> np.ndarray:
    """A file of the shared audio directory as 16 kHz mono float32 (cached, read-only)."""
    if name not in _RECORDINGS:
        samples = audio.decode_bytes((AUDIO_DIR / name).read_bytes(), max_duration_s=600).samples
        samples.setflags(write=False)
        _RECORDINGS[name] = samples
    return _RECORDINGS[name]


@pytest.fixture(scope="session")
def recordings() -> dict[str, np.ndarray]:
    """test.wav (8.8 s), 002282_15.wav (15 s, 24 kHz stereo) and the 27 s Fatiha, at 16 kHz."""
    return {name: load_recording(name) for name in ("test.wav", "002282_15.wav", "fatiha_long_track.wav")}
