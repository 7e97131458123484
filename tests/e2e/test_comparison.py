"""End to end with the prosody stage as its own process (the launcher's mesh, the tiny development
checkpoint): a reference recitation added over the admin RPC, Assess with compare_to through the
mesh, the CLI report, and the prosody process killed under load (every answer still comes,
without the comparison and marked degraded once the stage is gone)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf

from services.client.options import build_request
from services.common.audio import decode_bytes
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.launcher import Mesh
from tests.conftest import AUDIO_DIR, REPO, launcher_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh")
    env = launcher_env(
        root,
        {
            "MUAALEM_RECITATIONS_DIR": str(root / "recitations"),
            "MUAALEM_ADMIN_KEY_NAMES": "dev",  # the launcher's development key
        },
    )
    instance = Mesh(env=env, log_dir=root / "logs", start_timeout_s=60)
    instance.start()
    yield instance
    instance.stop()


def _metadata(mesh: Mesh) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {mesh.api_key}")]


def _learner_wav() -> bytes:
    """Another take of the ayah: the recording quieter, with a little noise."""
    samples = decode_bytes((AUDIO_DIR / "test.wav").read_bytes(), name_hint="test.wav").samples
    noisy = 0.7 * samples + np.random.default_rng(0).normal(0, 0.002, len(samples)).astype(np.float32)
    out = io.BytesIO()
    sf.write(out, noisy, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _request(reciter: str = "teacher") -> gateway_pb2.AssessRequest:
    request = build_request(_learner_wav(), surah=8, ayah=75, run_rules_on_mismatch=True)
    request.compare_to = reciter
    return request


def test_reference_then_compare_through_the_mesh(mesh: Mesh, tmp_path: Path) -> None:
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        added = stub.AddReferenceRecitation(
            gateway_pb2.AddReferenceRecitationRequest(
                audio=common_pb2.Audio(content=(AUDIO_DIR / "test.wav").read_bytes()),
                surah=8,
                ayah=75,
                reciter="teacher",
            ),
            metadata=_metadata(mesh),
            timeout=120,
        )
        assert [a.reciter for a in added.added] == ["teacher"]
        assessment = stub.Assess(_request(), metadata=_metadata(mesh), timeout=120).assessment
    assert assessment.HasField("comparison"), [(s.stage, s.message) for s in assessment.stages]
    assert assessment.comparison.reciter == "teacher" and assessment.comparison.similarity > 50
    stages = {s.stage: s.status for s in assessment.stages}
    assert stages["prosody"] == common_pb2.STAGE_STATUS_OK and stages["comparison"] == common_pb2.STAGE_STATUS_OK

    wav = tmp_path / "mine.wav"
    wav.write_bytes(_learner_wav())
    command = [
        sys.executable, "-m", "services.cli", "assess", str(wav), "--surah", "8", "--ayah", "75",
        "--compare-to", "teacher", "--run-rules-on-mismatch", "--address", mesh.address("gateway"),
    ]  # fmt: skip
    env = {**os.environ, "MUAALEM_API_KEY": mesh.api_key, "COLUMNS": "200"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "next to your teacher" in done.stdout and "similarity" in done.stdout


# Kills the prosody stage: kept last.
def test_prosody_killed_under_load_answers_without_the_comparison(mesh: Mesh) -> None:
    def assess() -> gateway_pb2.Assessment:
        with grpc.insecure_channel(mesh.address("gateway")) as channel:
            return (
                gateway_pb2_grpc.GatewayServiceStub(channel)
                .Assess(_request(), metadata=_metadata(mesh), timeout=120)
                .assessment
            )

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(assess) for _ in range(6)]
        time.sleep(1.0)
        mesh.processes["prosody"].kill()
        mesh.processes["prosody"].wait(timeout=30)
        answers = [f.result() for f in futures]  # none raises: the assessment never depends on prosody
    for answer in answers:
        assert answer.words
        assert answer.HasField("comparison") or {"prosody", "comparison"} & set(answer.degraded)
    after = assess()
    assert not after.HasField("comparison")
    assert "prosody" in after.degraded
    assert {s.stage: s.status for s in after.stages}["prosody"] == common_pb2.STAGE_STATUS_UNAVAILABLE
