"""The live section of the benchmark in quick mode (tiny checkpoint, real processes): its tables
are produced and every session ends. Nothing here asserts a speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# A minute of live sessions through real processes: make soak (the latency/throughput smoke
# test keeps bench.run itself under make test).
pytestmark = [pytest.mark.slow, pytest.mark.soak]


def test_quick_live_section_writes_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    command = [
        sys.executable, "-m", "bench.run", "--quick", "--only", "live",
        "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    block = re.search(r"<!-- bench:live -->\n(.*?)<!-- /bench:live -->", text, re.S)
    assert block, "no live block"
    body = block.group(1)
    # | stretch | sessions | at a pause / all | pause to verdict | model | final | finals | off target | unanswered |
    ms = r"([\d.]+) / [\d.]+"
    single = re.search(rf"^\| 3 s \| 1 \| (\d+) / \d+ \| {ms} \|[^|]*\| {ms} \| 1 / 1 \| \d+ \| 0 \|", body, re.M)
    assert single and int(single.group(1)) >= 1 and float(single.group(2)) > 0 and float(single.group(3)) > 0, body
    crowd = re.search(r"^\| 3 s \| 2 \(capacity\) \| (\d+) / \d+ \|.*\| 2 / 2 \| \d+ \| 0 \|", body, re.M)
    assert crowd and int(crowd.group(1)) >= 2, body
    # The session over capacity was refused, with when to try again.
    assert "RESOURCE_EXHAUSTED: this gateway is at its capacity of 2 live sessions" in body, body
