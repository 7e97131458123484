"""The phoneme vocabulary contract: a checkpoint whose vocab.json holds the right labels in
another order must stop the gateway (NOT_SERVING, the first differing label named), not
misalign every answer silently."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.alignment.vocabulary import default_vocabulary
from services.common.errors import Unavailable
from services.common.pb import asr_pb2, common_pb2
from services.gateway.reference.builder import phoneme_vocabulary
from services.gateway.server import build
from services.gateway.stage_calls import ModelVersionTracker
from services.gateway.vocabulary import VocabularyContract, first_difference, reference_labels
from tests.conftest import loopback_env

LABELS = default_vocabulary()


def _reordered() -> tuple[str, ...]:
    labels = list(LABELS)
    labels[3], labels[4] = labels[4], labels[3]
    return tuple(labels)


def test_the_three_shipped_vocabularies_agree() -> None:
    assert first_difference({"reference": reference_labels(phoneme_vocabulary()), "alignment": LABELS}) is None


def test_a_reordered_vocabulary_names_the_first_differing_label() -> None:
    problem = first_difference({"asr": _reordered(), "alignment": LABELS})
    assert problem is not None
    assert "phoneme id 3" in problem and repr(LABELS[4]) in problem and repr(LABELS[3]) in problem


def _info(name: str, labels: tuple[str, ...]) -> asr_pb2.GetModelInfoResponse:
    return asr_pb2.GetModelInfoResponse(
        model_version=common_pb2.ModelVersion(name=name, weights_digest=name),
        vocabularies=[asr_pb2.LevelVocabulary(level="phonemes", tokens=labels)],
    )


class SwappableAsr:
    """A stand-in at the asr boundary: GetModelInfo answers with whichever model is loaded."""

    def __init__(self, info: asr_pb2.GetModelInfoResponse) -> None:
        self.info = info

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse:
        return self.info


async def test_a_model_version_change_is_checked_and_flips_serving() -> None:
    asr = SwappableAsr(_info("good", LABELS))
    tracker = ModelVersionTracker(asr)  # type: ignore[arg-type]
    flips: list[bool] = []

    async def hook(serving: bool) -> None:
        flips.append(serving)

    tracker.vocabulary.on_change = hook
    await tracker.current()
    await tracker.confirm_vocabulary()
    assert tracker.vocabulary.labels == LABELS and flips == []

    asr.info = _info("reordered", _reordered())
    tracker.observe(asr.info.model_version)
    with pytest.raises(Unavailable, match="phoneme id 3"):
        await tracker.confirm_vocabulary()
    assert flips == [False]

    asr.info = _info("fixed", LABELS)
    tracker.observe(asr.info.model_version)
    await tracker.confirm_vocabulary()
    assert flips == [False, True]


async def test_an_asr_without_a_phoneme_vocabulary_is_not_checked_but_served() -> None:
    contract = VocabularyContract(reference=LABELS, alignment=LABELS)
    await contract.check("v", asr_pb2.GetModelInfoResponse())
    assert contract.problem is None and contract.labels == () and contract.checked == "v"
    contract.require()


@pytest.fixture
def reordered_checkpoint(tmp_path: Path) -> Path:
    from services.asr.devmodel import write_dev_checkpoint

    directory = write_dev_checkpoint(tmp_path / "reordered", size="tiny", seed=0)
    path = directory / "vocab.json"
    vocab = json.loads(path.read_text(encoding="utf-8"))
    phonemes = vocab["phonemes"]
    by_id = {i: token for token, i in phonemes.items()}
    phonemes[by_id[3]], phonemes[by_id[4]] = 4, 3
    path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return directory


async def test_the_gateway_does_not_serve_a_checkpoint_with_a_reordered_vocabulary(
    reordered_checkpoint: Path, tmp_path: Path
) -> None:
    environ = {
        **loopback_env("gateway"),
        "MUAALEM_GATEWAY_MODE": "local",
        "MUAALEM_GATEWAY_HTTP_PORT": "-1",
        "MUAALEM_ASR_MODEL": str(reordered_checkpoint),
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_CACHE_DIR": str(tmp_path / "cache"),
    }
    server, _, _ = build(environ)
    await server.start()
    try:
        with pytest.raises(Unavailable, match=f"phoneme id 3 .*{LABELS[4]!r}"):
            await server.wait_ready(timeout=120)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.stop(0)
