"""Held sounds in a synthesized recitation's truth: what the renderer stretches and what Silero
hears as non-speech."""

from __future__ import annotations

import itertools
from typing import Any

from services.demo.synth.script import MADD, NASALS


def held_runs(truth: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(symbols, start_s, end_s) of every run of two or more of the same madd or nasal symbol."""
    runs = []
    for symbol, run in itertools.groupby(truth["phoneme_times"], key=lambda p: p["symbol"]):
        spans = list(run)
        if symbol in MADD | NASALS and len(spans) >= 2:
            runs.append((symbol * len(spans), spans[0]["start_s"], spans[-1]["end_s"]))
    return runs
