"""The streaming section of the benchmark in quick mode (two synthetic segments on the demo
checkpoint, a short clip on the tiny checkpoint): its tables are produced. Nothing here asserts
a speed or an agreement."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.soak,  # a benchmark run: make soak
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]


def test_quick_streaming_section_writes_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    command = [
        sys.executable, "-m", "bench.run", "--quick", "--only", "streaming",
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    block = re.search(r"<!-- bench:streaming -->\n(.*?)<!-- /bench:streaming -->", out.read_text("utf-8"), re.S)
    assert block, "no streaming block"
    body = block.group(1)
    percent = r"\d+\.\d\d %"
    pair = r"\d+\.\d\d / \d+\.\d\d %"
    row = re.search(rf"^\| 3 / 2 / 1 \| {percent} \| {pair} \| {percent} \| {percent} \| \d+ % \|", body, re.M)
    assert row, body
    assert re.search(rf"^\| reference: the whole path, segment ending at 60% \| {percent} \|", body, re.M), body
    assert "**The default, W / L / R = 3 / 2 / 1 s**" in body, body
    assert re.search(r"^\| model time after `end` \(the last window\) \| \d+\.\d\d \|$", body, re.M), body
