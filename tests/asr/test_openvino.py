"""The OpenVINO backend against the torch model (tiny dev checkpoint), its compiled-model cache,
static int8, and what `auto` chooses on which hardware."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from services.asr.checkpoint import CheckpointFiles
from services.asr.engine import AsrEngine
from services.asr.export import STATIC_INT8, export_onnx
from services.asr.features import FeatureExtractor
from services.asr.hardware import choose_backend, choose_precision, cpu_flags, native_bf16_flags
from services.asr.modeling import MultiLevelCTC
from services.asr.onnx_backend import OnnxMultiLevelCTC
from services.asr.openvino_backend import OpenVinoMultiLevelCTC
from services.asr.results import TranscribeOptions
from services.common.errors import FailedPrecondition
from tests.asr import support
from tests.asr.conftest import geometry, output_lengths
from tests.conftest import AUDIO_DIR

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def graph(tiny_onnx: Path) -> Path:
    return tiny_onnx


def _batch(files: CheckpointFiles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16_000, 33_000, 9_120)]
    batch = FeatureExtractor(files.preprocessor_config).extract(waves)
    return batch.features, batch.attention_mask, batch.input_frames


@torch.no_grad()
@pytest.mark.parametrize("bucket_frames", [0, 64])
def test_openvino_float32_matches_torch(
    graph: Path, tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC, tmp_path: Path, bucket_frames: int
) -> None:
    backend = OpenVinoMultiLevelCTC(graph, precision="float32", cache_dir=tmp_path, bucket_frames=bucket_frames)
    assert backend.levels == tiny_model.levels and backend.precision == "float32" and backend.hint == "f32"
    assert backend.weights_digest == tiny_files.weights_digest and backend.dev_weights
    assert backend.num_parameters() == tiny_model.num_parameters()
    features, mask, frames = _batch(tiny_files)
    lengths = output_lengths(geometry(tiny_files), mask.sum(dim=1))
    expected, got = tiny_model(features, mask, frames), backend(features, mask, frames)
    for level in tiny_model.levels:
        assert got[level].dtype == torch.float32 and got[level].shape == expected[level].shape
        for item, length in enumerate(lengths):
            torch.testing.assert_close(got[level][item, :length], expected[level][item, :length], atol=1e-4, rtol=0)
    single = features[:1, :123]
    torch.testing.assert_close(backend(single)["phonemes"], tiny_model(single)["phonemes"], atol=1e-4, rtol=0)


@torch.no_grad()
def test_openvino_bfloat16_stays_close_to_float32(
    graph: Path, tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC, tmp_path: Path
) -> None:
    if not native_bf16_flags():
        # OpenVINO would compute in f32 under the name bfloat16: refused, and the message says why.
        with pytest.raises(FailedPrecondition, match=r"cannot run bfloat16 on this CPU.*would compute in f32"):
            OpenVinoMultiLevelCTC(graph, precision="bfloat16", cache_dir=tmp_path)
        return
    backend = OpenVinoMultiLevelCTC(graph, precision="bfloat16", cache_dir=tmp_path)
    assert backend.precision == "bfloat16" and backend.hint == "bf16"
    features, mask, frames = _batch(tiny_files)
    expected = tiny_model(features, mask, frames)["phonemes"][0]
    got = backend(features, mask, frames)["phonemes"][0]
    assert (got - expected).abs().max() < 0.25
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.9


def test_the_compiled_model_is_cached(graph: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OpenVinoMultiLevelCTC(graph, precision="float32", cache_dir=cache)
    blobs = {p: p.stat().st_mtime_ns for p in cache.rglob("*.blob")}
    assert blobs, "no compiled blob was written"
    again = OpenVinoMultiLevelCTC(graph, precision="float32", cache_dir=cache)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.blob")} == blobs  # read, not rewritten
    assert again.compile_s >= 0


def test_refusals(graph: Path, tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="float32, bfloat16 or float16"):
        OpenVinoMultiLevelCTC(graph, precision="int8", cache_dir=tmp_path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FailedPrecondition, match="cannot load"):
        OpenVinoMultiLevelCTC(tmp_path / "junk.onnx")


@pytest.mark.soak  # a calibrated static-int8 export: make soak
@torch.no_grad()
def test_static_int8_calibrated_on_recitations(
    tmp_path: Path, tiny_files: CheckpointFiles, tiny_model: MultiLevelCTC, graph: Path
) -> None:
    out = export_onnx(tiny_files, tmp_path / "static.onnx", calibration=[AUDIO_DIR / "test.wav"])
    features, mask, frames = _batch(tiny_files)
    expected = tiny_model(features, mask, frames)["phonemes"][0]
    ort = OnnxMultiLevelCTC(out, ["CPUExecutionProvider"])
    vino = OpenVinoMultiLevelCTC(out, precision="bfloat16", cache_dir=tmp_path / "cache")
    assert ort.precision == vino.precision == STATIC_INT8
    with pytest.raises(FailedPrecondition, match="cannot run at"):
        OpenVinoMultiLevelCTC(out, precision="float16", cache_dir=tmp_path / "cache")
    for backend in (ort, vino):
        got = backend(features, mask, frames)["phonemes"][0]
        assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.8
    with pytest.raises(FailedPrecondition, match="not both"):
        export_onnx(tiny_files, tmp_path / "x.onnx", int8=True, calibration=[AUDIO_DIR / "test.wav"])


async def test_the_openvino_engine_serves_what_torch_serves(tmp_path: Path) -> None:
    """No ONNX path: the engine exports the checkpoint into its cache once and serves it."""
    torch_engine = AsrEngine(support.config(MUAALEM_SEGMENTER_MODEL=""))
    vino = AsrEngine(
        support.config(
            MUAALEM_SEGMENTER_MODEL="", MUAALEM_ASR_BACKEND="openvino", MUAALEM_CACHE_DIR=str(tmp_path)
        )
    )
    await torch_engine.start()
    await vino.start()
    try:
        version = vino.version
        assert version.backend == "openvino" and version.precision == "float32" and version.device == "cpu"
        assert "set explicitly" in version.precision_reason
        assert list((tmp_path / "onnx").glob("*/model.onnx")) and list((tmp_path / "openvino").iterdir())
        assert vino.model_info().parameters == torch_engine.model_info().parameters
        wav = support.long_recitation(25)  # two windows in one batch
        options = TranscribeOptions(include_log_probs=True)
        expected, got = await torch_engine.transcribe(wav, options), await vino.transcribe(wav, options)
        for level in expected.log_probs:
            np.testing.assert_allclose(got.log_probs[level], expected.log_probs[level], atol=1e-4)
        assert got.decode.phonemes == expected.decode.phonemes
        assert [(t.id, t.start_frame, t.end_frame) for t in got.decode.tokens] == [
            (t.id, t.start_frame, t.end_frame) for t in expected.decode.tokens
        ]
    finally:
        await vino.close()
        await torch_engine.close()


def test_auto_chooses_by_the_hardware() -> None:
    bf16 = choose_precision("auto", "cpu", frozenset({"avx512f", "avx512_bf16"}))
    assert bf16.precision == "bfloat16" and "avx512_bf16" in bf16.reason
    amx = choose_precision("auto", "cpu", frozenset({"amx_bf16", "amx_tile"}))
    assert amx.precision == "bfloat16" and "amx_bf16" in amx.reason
    plain = choose_precision("auto", "cpu", frozenset({"avx2", "avx512f"}))
    assert plain.precision == "float32" and "no native bfloat16" in plain.reason
    assert choose_precision("auto", "cuda:0").precision == "float16"
    assert choose_precision("int8", "cpu", frozenset({"avx512_bf16"})).precision == "int8"


def test_auto_backend_follows_the_measurements() -> None:
    assert choose_backend("auto", "cuda:0") == "torch"
    assert choose_backend("auto", "cpu", frozenset({"avx2", "avx512_bf16"})) == "openvino"
    assert choose_backend("auto", "cpu", frozenset({"avx2", "amx_bf16"})) == "openvino"
    assert choose_backend("auto", "cpu", frozenset({"avx2", "fma"})) == "onnxruntime"
    assert choose_backend("openvino", "cpu", frozenset({"avx2"})) == "openvino"


async def test_auto_is_logged_and_exposed(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    engine = AsrEngine(
        support.config(
            MUAALEM_SEGMENTER_MODEL="", MUAALEM_ASR_PRECISION="auto", MUAALEM_ASR_BACKEND="auto",
            MUAALEM_CACHE_DIR=str(tmp_path),
        )
    )
    await engine.start()
    try:
        expected = choose_precision("auto", "cpu", cpu_flags())
        backend = "openvino" if native_bf16_flags() else "onnxruntime"
        reason = f"backend auto: {backend} on cpu; {expected.reason}"
        assert engine.version.backend == backend and engine.version.precision == expected.precision
        assert engine.version.precision_reason == reason
        assert engine.model_info().model_version.precision_reason == reason
        assert REGISTRY.get_sample_value(
            "muaalem_asr_model_info",
            {"model": engine.version.name, "backend": backend, "precision": expected.precision, "device": "cpu",
             "precision_reason": reason},
        ) == 1.0
    finally:
        await engine.close()
