"""The CPU serving paths chosen for speed give the numbers of the plain ones: linear layers through
oneDNN (float32; the engine switches it on for CPU float32 only), no key mask when nothing is
padding, and the bfloat16 position bias by indexing instead of gather."""

from __future__ import annotations

import copy

import pytest
import torch

from services.asr.checkpoint import CheckpointFiles
from services.asr.config import AsrConfig
from services.asr.engine import AsrEngine
from services.asr.modeling import MultiLevelCTC, SelfAttention, _relative_key_index
from services.asr.weights import _OneDnnLinear, use_onednn_linears

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


@needs_onednn
def test_onednn_linears_give_the_same_logits(tiny_model: MultiLevelCTC) -> None:
    fast = copy.deepcopy(tiny_model)
    swapped = use_onednn_linears(fast)
    assert swapped == sum(1 for m in tiny_model.modules() if type(m) is torch.nn.Linear) > 0
    assert fast.state_dict().keys() == tiny_model.state_dict().keys()
    features = torch.randn(2, 120, 160, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 120, dtype=torch.int64)
    mask[1, 90:] = 0
    with torch.inference_mode():
        expected, got = tiny_model(features, mask), fast(features, mask)
    for level in expected:
        torch.testing.assert_close(got[level], expected[level], atol=1e-5, rtol=0)


@needs_onednn
@pytest.mark.parametrize(("precision", "onednn"), [("float32", True), ("int8", False)])
async def test_the_engine_uses_onednn_for_cpu_float32_only(
    tiny_files: CheckpointFiles, precision: str, onednn: bool
) -> None:
    engine = AsrEngine(
        AsrConfig.from_env(
            {
                "MUAALEM_ASR_MODEL": str(tiny_files.directory),
                "MUAALEM_SEGMENTER_MODEL": "",
                "MUAALEM_ASR_DEVICE": "cpu",
                "MUAALEM_ASR_PRECISION": precision,
            }
        )
    )
    await engine.start()
    try:
        model = engine._state().runner.model
        assert any(isinstance(m, _OneDnnLinear) for m in model.modules()) is onednn
    finally:
        await engine.close()


def test_an_all_valid_mask_is_the_same_as_no_mask(tiny_model: MultiLevelCTC) -> None:
    features = torch.randn(1, 101, 160, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        masked = tiny_model(features, torch.ones(1, 101, dtype=torch.int64))
        bare = tiny_model(features, None)
    for level in masked:
        assert torch.equal(masked[level], bare[level])


def test_the_bfloat16_position_bias_equals_the_gather() -> None:
    torch.manual_seed(3)
    layer = SelfAttention(64, 4, (64, 8)).eval().to(torch.bfloat16)
    q = torch.randn(2, 4, 150, 16).to(torch.bfloat16)
    with torch.inference_mode():
        got = layer._position_bias(q)
        table = layer.distance_embedding.weight.to(q.dtype)
        index = _relative_key_index(150, 64, 8, q.device)
        expected = (torch.matmul(q, table.t()) * layer.scaling).gather(3, index.expand(2, 4, 150, 150))
    assert torch.equal(got, expected)
