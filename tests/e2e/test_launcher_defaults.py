"""The launcher's defaults (`make serve`, `make demo`), without starting a mesh."""

from __future__ import annotations

from pathlib import Path


def test_the_launcher_runs_the_fastest_measured_backend_unless_told(tmp_path: Path) -> None:
    from services.launcher import Mesh, first_start_note

    cache = {"MUAALEM_CACHE_DIR": str(tmp_path), "MUAALEM_API_KEYS": "x:" + "0" * 64}
    assert Mesh(env=cache).service_env()["MUAALEM_ASR_BACKEND"] == "auto"
    assert Mesh(env={**cache, "MUAALEM_ASR_BACKEND": "torch"}).service_env()["MUAALEM_ASR_BACKEND"] == "torch"
    env = Mesh(env=cache).service_env()
    assert str(tmp_path / "onnx") in first_start_note(env)
    # Once a graph is cached the first start is behind us; torch exports nothing.
    (tmp_path / "onnx" / "digest").mkdir(parents=True)
    (tmp_path / "onnx" / "digest" / "model.onnx").write_bytes(b"")
    assert first_start_note(env) == ""
    assert first_start_note({**cache, "MUAALEM_ASR_BACKEND": "torch"}) == ""
