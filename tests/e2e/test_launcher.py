"""`make serve`: the launcher brings the four processes to SERVING, prints where they are, and
stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.healthcheck import check
from tests.conftest import AUDIO_DIR, REPO, free_port

pytestmark = pytest.mark.slow


def test_serve_reaches_serving_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # The launcher's own backend default (auto): not the caller's shell's.
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"MUAALEM_ASR_BACKEND", "MUAALEM_ASR_ONNX_PATH"}},
        "MUAALEM_CACHE_DIR": str(tmp_path / "cache"),
        "MUAALEM_ASR_MODEL": str(tmp_path / "none"),
        "MUAALEM_SEGMENTER_MODEL": "",
        "MUAALEM_SHUTDOWN_DELAY_S": "0",
        "PYTHONUNBUFFERED": "1",
    }
    ports = {}
    for name in ("gateway", "asr", "alignment", "tajweed", "prosody"):
        ports[name] = free_port()
        env[f"MUAALEM_{name.upper()}_PORT"] = str(ports[name])
        env[f"MUAALEM_{name.upper()}_METRICS_PORT"] = str(free_port())
    env["MUAALEM_GATEWAY_HTTP_PORT"] = str(free_port())
    log = (tmp_path / "serve.log").open("w")
    started = time.monotonic()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "services.launcher", "--log-dir", str(tmp_path / "logs")],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while "SERVING" not in (tmp_path / "serve.log").read_text():
            assert launcher.poll() is None, (tmp_path / "serve.log").read_text()
            # The first start exports the demo checkpoint's graph (30 s on 2 loaded cores).
            assert time.monotonic() - started < 150, "not SERVING within 150 s"
            time.sleep(0.2)
        banner = (tmp_path / "serve.log").read_text()
        assert "dev API key: mua_" in banner
        assert "first start: the asr exports its model graph" in banner
        # auto: the fastest measured path for this CPU (hardware.py), never torch on a CPU.
        assert "MUAALEM_ASR_BACKEND=auto" in banner
        assert "asr runs openvino" in banner or "asr runs onnxruntime" in banner, banner
        for name, port in ports.items():
            assert check(f"127.0.0.1:{port}") == "SERVING", name
            assert f"127.0.0.1:{port}" in banner
        # `make serve` then `muaalem assess`: no key is given, the CLI finds the dev key.
        command = [sys.executable, "-m", "services.cli", "assess", str(AUDIO_DIR / "test.wav"), "--surah", "8"]
        command += ["--ayah", "75", "--words", "17:9", "--json", "--address", f"127.0.0.1:{ports['gateway']}"]
        assess = subprocess.run(
            command,
            check=False,
            cwd=REPO,
            env={k: v for k, v in env.items() if k != "MUAALEM_API_KEY"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert assess.returncode == 0, assess.stderr
        assert '"target"' in assess.stdout
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 0
        for name, port in ports.items():
            assert check(f"127.0.0.1:{port}", timeout_s=1) == "UNAVAILABLE", f"{name} still answers"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        log.close()

