"""ONNX export and the ONNX Runtime backend against the torch model (tiny dev checkpoint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from services.asr.checkpoint import CheckpointFiles
from services.asr.features import FeatureExtractor
from services.asr.loading import geometry_of
from services.asr.modeling import MultiLevelCTC
from services.asr.onnx_backend import OnnxMultiLevelCTC
from services.cli import main
from services.common.errors import FailedPrecondition, Unavailable
from tests.asr.conftest import geometry, output_lengths


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, tiny_onnx: Path) -> dict[str, Path]:
    # The float32 graph is the session's (the same exporter); the int8 one goes through the CLI.
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export-onnx", str(tiny_checkpoint), str(out / "tiny-int8.onnx"), "--int8"]) == 0
    return {"float32": tiny_onnx, "int8": out / "tiny-int8.onnx"}


def _batch(files: CheckpointFiles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16_000, 33_000, 9_120)]
    batch = FeatureExtractor(files.preprocessor_config).extract(waves)
    return batch.features, batch.attention_mask, batch.input_frames


@torch.no_grad()
def test_onnx_runtime_matches_torch(
    exported: dict[str, Path], tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC
) -> None:
    backend = OnnxMultiLevelCTC(exported["float32"], ["CPUExecutionProvider"])
    assert backend.levels == tiny_model.levels
    assert backend.version == tiny_files.version and backend.dev_weights
    assert backend.precision == "float32" and backend.providers == ["CPUExecutionProvider"]
    assert backend.num_parameters() == tiny_model.num_parameters()
    features, mask, frames = _batch(tiny_files)
    # The graph's adapter arithmetic (export metadata) is the checkpoint's, which serving uses.
    expected_geometry = geometry(tiny_files)
    assert geometry_of(backend.metadata, tiny_files.preprocessor_config) == expected_geometry
    lengths = output_lengths(expected_geometry, mask.sum(dim=1))
    assert backend.weights_digest == tiny_files.weights_digest
    expected = tiny_model(features, mask, frames)
    got = backend(features, mask, frames)
    for level in tiny_model.levels:
        assert got[level].dtype == torch.float32 and got[level].shape == expected[level].shape
        for item, length in enumerate(lengths):
            torch.testing.assert_close(got[level][item, :length], expected[level][item, :length], atol=1e-4, rtol=0)
    # Defaults (no mask, every frame present) as the torch model's; another length than exported.
    single = features[:1, :123]
    torch.testing.assert_close(backend(single)["phonemes"], tiny_model(single)["phonemes"], atol=1e-4, rtol=0)


@torch.no_grad()
def test_int8_model_runs_close_to_torch(
    exported: dict[str, Path], tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC
) -> None:
    backend = OnnxMultiLevelCTC(exported["int8"])
    assert backend.precision == "int8"
    assert exported["int8"].stat().st_size < exported["float32"].stat().st_size
    features, mask, frames = _batch(tiny_files)
    expected = tiny_model(features, mask, frames)["phonemes"][0]
    got = backend(features, mask, frames)["phonemes"][0]
    assert (got - expected).abs().max() < 0.5
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.8


def test_missing_or_foreign_models(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(Unavailable, match="muaalem export-onnx"):
        OnnxMultiLevelCTC(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FailedPrecondition, match="cannot load"):
        OnnxMultiLevelCTC(tmp_path / "junk.onnx")
    assert main(["export-onnx", str(tmp_path / "no-checkpoint"), str(tmp_path / "x.onnx")]) == 1
