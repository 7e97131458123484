"""The wire contract: buf lint passes and the committed generated code is what `make protos` makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from services.common import protogen
from tests.conftest import REPO


def _buf() -> str:
    candidate = Path(sys.executable).parent / "buf"
    found = str(candidate) if candidate.exists() else shutil.which("buf")
    assert found, "buf is not installed (PyPI buf-bin, part of the dev extra)"
    return found


def test_buf_lint_passes_with_the_standard_rules() -> None:
    result = subprocess.run(
        [_buf(), "lint"], check=False, cwd=REPO / "protos", capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_code_is_up_to_date() -> None:
    assert protogen.is_stale() == [], "run `make protos` and commit the result"


def test_every_service_is_in_package_muaalem_v1() -> None:
    from services.common.pb import alignment_pb2, asr_pb2, gateway_pb2, prosody_pb2, tajweed_pb2

    names = {
        service.full_name
        for module in (asr_pb2, alignment_pb2, tajweed_pb2, prosody_pb2, gateway_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    assert names == {
        "muaalem.v1.AsrService",
        "muaalem.v1.AlignmentService",
        "muaalem.v1.TajweedService",
        "muaalem.v1.ProsodyService",
        "muaalem.v1.GatewayService",
    }
