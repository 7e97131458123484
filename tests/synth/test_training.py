"""The demo model's training continues from a checkpoint's weights (--init-from): a run on new
renderings starts where the last one ended, not from random weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from services.asr.checkpoint import resolve_checkpoint
from services.asr.weights import load_multilevel_ctc
from services.demo.training.data import build
from services.demo.training.train import train
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (`make test` installs Debian's espeak-ng)"
)


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_multilevel_ctc(resolve_checkpoint(str(directory)), "cpu", "float32").state_dict()


def test_a_run_from_a_checkpoint_starts_from_its_weights(tmp_path: Path) -> None:
    source = REPO / "services" / "asr" / "demo_model"
    data = tmp_path / "data.pt"
    build(10, data, seed=3, log=lambda _: None)
    # At a learning rate of 0 nothing moves: what is written is what was loaded.
    recipe = train(data, tmp_path / "same", seed=0, budget_s=2.0, log=lambda _: None, init_from=source, peak_lr=0.0)
    assert recipe["steps"] >= 1 and recipe["started_from"]["checkpoint"] == str(source)
    loaded, written = _weights(source), _weights(tmp_path / "same")
    assert all(torch.equal(loaded[k], written[k]) for k in loaded)
    # A random start is another model altogether.
    train(data, tmp_path / "fresh", seed=0, budget_s=2.0, log=lambda _: None, peak_lr=0.0)
    fresh = _weights(tmp_path / "fresh")
    assert not all(torch.equal(loaded[k], fresh[k]) for k in loaded)


def test_the_training_texts_are_neither_the_calibration_nor_the_evaluation_split() -> None:
    from services.demo.training.data import TRAIN_SURAHS
    from services.tajweed.calibration import CALIBRATION_SURAHS, EVALUATION_SURAHS

    assert set(TRAIN_SURAHS).isdisjoint(CALIBRATION_SURAHS)
    assert set(TRAIN_SURAHS).isdisjoint(EVALUATION_SURAHS)
    assert min(TRAIN_SURAHS) == 1 and max(TRAIN_SURAHS) == min(CALIBRATION_SURAHS) - 1
