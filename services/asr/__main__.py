"""`python -m services.asr`: the ASR stage's gRPC server (health NOT_SERVING until loaded)."""

from __future__ import annotations

from services.asr.config import AsrConfig
from services.asr.servicer import build_server
from services.common.server import MeshServer, run
from services.common.settings import ServerSettings


def build() -> MeshServer:
    server, _ = build_server(AsrConfig.from_env(), ServerSettings.from_env("asr"))
    return server


if __name__ == "__main__":
    run("asr", build)
