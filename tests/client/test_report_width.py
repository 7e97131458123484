"""The report a learner reads in an 80-column terminal: every finding on one or two lines.

The assessment is the one `make demo` printed (tests/data/fixtures/demo_assessment_103_3.json,
saved with `python -m services.demo --json-out`). It is rendered twice: by rich at 80 columns, and
by `muaalem report` in a real 80-column tmux pane, whose capture is what a learner would see;
every failure message carries the capture."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from google.protobuf import json_format
from rich.cells import cell_len
from rich.console import Console

from services.client.report import _merge_gaps, render
from services.common.findings import LETTER_RULES
from services.common.pb import gateway_pb2
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "data" / "fixtures" / "demo_assessment_103_3.json"


def _assessment() -> gateway_pb2.Assessment:
    return json_format.Parse(FIXTURE.read_text(), gateway_pb2.Assessment())


def _check_findings_fit(capture: str, assessment: gateway_pb2.Assessment, width: int) -> None:
    lines = capture.splitlines()
    shown = f"\n--- the report at {width} columns ---\n{capture}\n---"
    # Display cells, not characters: harakat combine with their letter and take no cell of their own.
    assert all(cell_len(line.rstrip()) <= width for line in lines), "a line runs past the terminal" + shown
    errors = _merge_gaps(list(assessment.errors))
    assert errors, "the demo's assessment has findings to show"
    for error in errors:
        # The note on one line of its own, right under a line naming the word: two lines at most.
        at = [i for i, line in enumerate(lines) if error.message_en in line]
        assert at, f"{error.message_en!r} is not on one line" + shown
        assert error.word in lines[at[0] - 1], f"the line above {error.message_en!r} does not name {error.word}" + shown
    for finding in assessment.findings:
        if finding.rule in LETTER_RULES:
            continue
        word = assessment.words[finding.word_index].uthmani
        name = finding.rule_name
        assert any(word in line and name in line for line in lines), f"{name} on {word} is not one line" + shown
        if finding.measured.HasField("duration_harakat"):
            held = f"timed {finding.measured.duration_harakat:.1f}"
            assert any(name in line and held in line for line in lines), f"{name}: no {held!r}" + shown


def test_every_finding_fits_two_lines_at_80_columns() -> None:
    assessment = _assessment()
    console = Console(record=True, width=80)
    render(assessment, console)
    capture = console.export_text()
    _check_findings_fit(capture, assessment, 80)
    # The coloured verse comes first, before any banner or finding.
    assert capture.index(assessment.words[0].uthmani) < capture.index("DEMO WEIGHTS")


def test_wide_terminals_keep_the_table() -> None:
    console = Console(record=True, width=160)
    render(_assessment(), console)
    text = console.export_text()
    assert "┃ word" in text and "┃ note" in text


def test_the_report_in_an_80_column_tmux_pane(tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    assert tmux, "tmux is one of the Debian packages `make test` installs"
    session = f"muaalem-{uuid.uuid4().hex[:8]}"
    done = tmp_path / "done"
    command = f"{sys.executable} -m services.cli report {FIXTURE}; touch {done}; sleep 30"
    subprocess.run(
        [tmux, "new-session", "-d", "-s", session, "-x", "80", "-y", "200", "-c", str(REPO), command], check=True
    )
    try:
        deadline = time.monotonic() + 60
        while not done.exists():
            assert time.monotonic() < deadline, "muaalem report did not finish in the pane"
            time.sleep(0.2)
        capture = subprocess.run(
            [tmux, "capture-pane", "-p", "-t", session, "-S", "-200"], check=True, capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run([tmux, "kill-session", "-t", session], check=False)
    _check_findings_fit(capture.rstrip() + "\n", _assessment(), 80)


@pytest.mark.parametrize("width", [80, 90, 99])
def test_narrow_widths_never_spread_a_finding_over_three_lines(width: int) -> None:
    assessment = _assessment()
    console = Console(record=True, width=width)
    render(assessment, console)
    _check_findings_fit(console.export_text(), assessment, width)
