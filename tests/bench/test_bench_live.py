"""The live section of the benchmark in quick mode (tiny checkpoint, real processes): its tables
are produced and every session ends. Nothing here asserts a speed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


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
    row = re.search(r"^\| 5 s \| 1 \| (\d+) \| ([\d.]+) / [\d.]+ \|", body, re.M)
    assert row and int(row.group(1)) >= 1 and float(row.group(2)) > 0, body
    crowd = re.search(r"^\| 2 \| (\d+) \| (\d+) \|", body, re.M)
    assert crowd and crowd.group(1) == "2" and crowd.group(2) == "0", body
