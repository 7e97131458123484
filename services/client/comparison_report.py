"""The comparison with a reference recitation in the terminal report (`muaalem assess --compare-to`)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.common.pb import prosody_pb2


def _maqam(m: prosody_pb2.MaqamEstimate) -> str:
    return f"{m.name} ({m.confidence:.0%})" if m.name else "-"


def comparison_parts(c: prosody_pb2.Comparison, max_rows: int = 30) -> list[Any]:
    head = Text(
        f"similarity {c.similarity:.0f}/100 to {c.reciter or 'the default reciter'}   "
        f"tempo x{c.tempo_ratio:.2f} ({'slower' if c.tempo_ratio > 1 else 'faster'} than the teacher, "
        f"by {c.tempo_source})   "
        f"key {c.key_shift_cents / 100:+.1f} semitones   words paired by {c.word_alignment}",
        style="bold",
    )
    lines: list[Any] = [head]
    for line in c.feedback:
        lines.append(Text(f"• {line.en}"))
        lines.append(Text(f"• {line.ar}", justify="right"))
    if not c.feedback:
        lines.append(Text("close to the teacher: nothing stands out", style="green"))
    maqam = f"maqam: you {_maqam(c.learner_maqam)}, teacher {_maqam(c.reference_maqam)} (a hint, not a verdict)"
    lines.append(Text(maqam, style="grey50"))
    parts: list[Any] = [Panel(Group(*lines), title="next to your teacher", border_style="magenta")]

    if c.madds:
        madds = Table(title="madd lengths (harakat)")
        for column in ("word", "rule", "you", "teacher", "expected"):
            madds.add_column(column)
        for m in c.madds[:max_rows]:
            madds.add_row(
                m.text, m.rule, f"{m.learner_harakat:.1f}", f"{m.reference_harakat:.1f}", str(m.golden_len or "-")
            )
        parts.append(madds)
    if c.HasField("learner_rhythm") and c.HasField("reference_rhythm"):
        rhythm = Table(title="rhythm")
        for column in ("", "nPVI-V", "Varco-V", "rPVI-C ms", "Varco-C", "%V", "rate /s", "pauses"):
            rhythm.add_column(column)
        for name, r in (("you", c.learner_rhythm), ("teacher", c.reference_rhythm)):
            rhythm.add_row(
                name,
                f"{r.npvi_v:.0f}",
                f"{r.varco_v:.0f}",
                f"{r.rpvi_c_ms:.0f}",
                f"{r.varco_c:.0f}",
                f"{r.percent_v:.0f}",
                f"{r.articulation_rate:.1f}",
                f"{r.pause_ratio:.0%}",
            )
        parts.append(rhythm)
    return parts
