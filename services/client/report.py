"""The learner's report in a terminal: the verse coloured word by word like a teacher's marks,
the errors, the rules checked, the scores, and how each stage fared.

A terminal of WIDE_COLUMNS or more gets the tables; a narrower one (an 80-column pane) gets each
finding on one or two lines (findings.py), because a seven-column table squeezes its notes into
ten-character columns there, one word per line."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.client.findings import WIDE_COLUMNS, error_lines, rule_lines, span_text
from services.client.findings import rule_name as _rule_name
from services.client.findings import verdict_name as _verdict_name
from services.client.located import located_line
from services.common.findings import LETTER_RULES
from services.common.pb import common_pb2, gateway_pb2
from services.common.script import readable

WORD_STYLE = {
    gateway_pb2.WORD_VERDICT_CORRECT: "bold green",
    gateway_pb2.WORD_VERDICT_MISTAKE: "bold red",
    gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE: "bold dark_orange",
    gateway_pb2.WORD_VERDICT_NOT_ASSESSED: "grey50",
}
LEGEND = (
    ("correct", "bold green"),
    ("mistake", "bold red"),
    ("tajweed issue", "bold dark_orange"),
    ("not assessed", "grey50"),
)


def _gap(error: gateway_pb2.ErrorItem) -> str:
    """ "extra" for a sound heard with nothing expected, "missing" for one expected and not heard."""
    if not error.expected:
        return "extra"
    return "missing" if not error.heard else ""


def _merge_gaps(errors: list[gateway_pb2.ErrorItem]) -> list[gateway_pb2.ErrorItem]:
    """Consecutive inserted sounds in one word read as one line ("extra: ابت"), and so do
    consecutive missing ones: a dropped word is one mistake to a learner, not a line per letter."""
    merged: list[gateway_pb2.ErrorItem] = []
    for error in errors:
        previous = merged[-1] if merged else None
        gap = _gap(error)
        if (
            previous is not None
            and gap
            and _gap(previous) == gap
            and previous.word_index == error.word_index
            and previous.kind == error.kind
        ):
            previous.time_span.end_s = max(previous.time_span.end_s, error.time_span.end_s)
            if gap == "extra":
                previous.heard += error.heard
                previous.message_en = f"Extra sounds not in the text: {readable(previous.heard)}"
            else:
                previous.expected += error.expected
                previous.message_en = f"Not recited: {readable(previous.expected)}"
            continue
        copy = gateway_pb2.ErrorItem()
        copy.CopyFrom(error)
        merged.append(copy)
    return merged


def render(assessment: gateway_pb2.Assessment, console: Console | None = None, max_rows: int = 30) -> None:
    console = console or Console()
    parts: list[Any] = []
    verse = Text(justify="right")
    for word in assessment.words:
        verse.append(word.uthmani, style=WORD_STYLE.get(word.verdict, ""))
        verse.append(" ")
    legend = Text()
    for name, style in LEGEND:
        legend.append(f"■ {name}  ", style=style)
    content = assessment.content
    status = gateway_pb2.ContentStatus.Name(content.status).removeprefix("CONTENT_STATUS_").lower()
    header = Text(f"content: {status} (similarity {content.similarity:.2f}, threshold {content.threshold:.2f})")
    body: list[Any] = [verse, legend, header]
    if assessment.HasField("located"):
        body.insert(0, located_line(assessment.located))
    if content.status == gateway_pb2.CONTENT_STATUS_MISMATCH and content.likely_recited:
        best = content.likely_recited[0]
        body.append(
            Text(
                f"what was most likely recited: {best.surah}:{best.ayah} (word {best.start_word}) "
                f"{best.uthmani}  [similarity {best.similarity:.2f}]",
                style="yellow",
            )
        )
    # The verse first: what a learner looks for is which words turned red.
    parts.append(Panel(Group(*body), title="recitation", border_style="cyan"))
    parts.extend(_weights_banner(assessment.model_version))

    errors = _merge_gaps(list(assessment.errors))
    rule_findings = [f for f in assessment.findings if f.rule not in LETTER_RULES]
    if console.width < WIDE_COLUMNS:
        parts.extend(error_lines(errors, max_rows))
        parts.extend(rule_lines(rule_findings, assessment.words, max_rows))
    else:
        parts.extend(_error_table(errors, max_rows))
        parts.extend(_rule_table(rule_findings, assessment.words, max_rows))
    _tail(assessment, parts, max_rows)
    for part in parts:
        console.print(part)


def _weights_banner(version: common_pb2.ModelVersion) -> list[Any]:
    """A warning when the weights cannot hear people (random development or demo weights)."""
    if version.dev_weights:
        return [
            Panel(
                Text(
                    "DEVELOPMENT WEIGHTS: the model has random weights, so what it 'heard' is noise. "
                    "Point MUAALEM_ASR_MODEL at the real checkpoint (obadx/muaalem-model-v3_2) for real feedback.",
                    style="bold white on red",
                ),
                title="warning",
                border_style="red",
            )
        ]
    if version.demo_weights:
        return [
            Panel(
                Text(
                    "DEMO WEIGHTS: a small model trained on the project's synthetic reciter (espeak-ng). "
                    "It hears that voice, not people: its verdicts on synthetic recitations are real, "
                    "on a person's recitation they are not. "
                    "Point MUAALEM_ASR_MODEL at the real checkpoint (obadx/muaalem-model-v3_2) for real feedback.",
                    style="bold black on yellow",
                ),
                title="demo weights",
                border_style="yellow",
            )
        ]
    return []


def _error_table(errors: list[gateway_pb2.ErrorItem], max_rows: int) -> list[Any]:
    parts: list[Any] = []
    if errors:
        table = Table(title="errors", show_lines=False)
        for column in ("word", "kind", "rule", "expected", "heard", "when", "note"):
            table.add_column(column)
        for error in errors[:max_rows]:
            table.add_row(
                error.word,
                error.kind,
                _rule_name(error.rule),
                readable(error.expected),
                readable(error.heard),
                span_text(error.time_span),
                error.message_en,
            )
        parts.append(table)
        if len(errors) > max_rows:
            parts.append(Text(f"... and {len(errors) - max_rows} more errors (--json shows all)", style="grey50"))
    else:
        parts.append(Text("no errors found", style="green"))

    return parts


def _rule_table(rule_findings: list[common_pb2.Finding], words: Any, max_rows: int) -> list[Any]:
    # Letter and haraka findings are the error table's; this table is for the tajweed rules.
    parts: list[Any] = []
    if rule_findings:
        rules = Table(title="tajweed rules checked")
        for column in ("word", "rule", "expected", "measured (duration | symbols)", "verdict", "confidence"):
            rules.add_column(column)
        for finding in rule_findings[:max_rows]:
            measured = finding.measured
            duration = f"{measured.duration_harakat:.1f}" if measured.HasField("duration_harakat") else "-"
            symbols = f"{measured.symbol_count:.0f}" if measured.HasField("symbol_count") else "-"
            word_text = words[finding.word_index].uthmani if finding.word_index < len(words) else ""
            style = "grey50" if finding.verdict == common_pb2.VERDICT_UNCERTAIN else None
            rules.add_row(
                word_text,
                finding.rule_name or _rule_name(finding.rule),
                "/".join(str(h) for h in finding.expected.harakat) or finding.expected.text,
                f"{duration} | {symbols}",
                _verdict_name(finding.verdict),
                f"{finding.confidence:.2f}",
                style=style,
            )
        parts.append(rules)
        if len(rule_findings) > max_rows:
            parts.append(Text(f"... and {len(rule_findings) - max_rows} more rule checks", style="grey50"))
    return parts


def _tail(assessment: gateway_pb2.Assessment, parts: list[Any], max_rows: int) -> None:
    """The comparison, the scores, the stages and the footer: the same at any width."""
    if assessment.HasField("comparison"):
        from services.client.comparison_report import comparison_parts

        parts.extend(comparison_parts(assessment.comparison, max_rows))

    scores = assessment.scores
    parts.append(
        Text(
            f"scores  overall {scores.overall:.0f}  accuracy {scores.accuracy:.0f}  tajweed {scores.tajweed:.0f}  "
            f"confidence {scores.confidence:.0f}"
            + (f"   tempo {assessment.tempo.haraka_s:.2f} s/haraka" if assessment.tempo.haraka_s else ""),
            style="bold",
        )
    )
    stages = Table(title="stages")
    for column in ("stage", "status", "ms", "note"):
        stages.add_column(column)
    for report in assessment.stages:
        stages.add_row(
            report.stage,
            common_pb2.StageStatus.Name(report.status).removeprefix("STAGE_STATUS_").lower(),
            f"{report.duration_ms:.1f}",
            report.message,
        )
    parts.append(stages)
    version = assessment.model_version
    parts.append(
        Text(
            f"model {version.name} ({version.weights_digest}, {version.backend} {version.precision}"
            f" on {version.device}{'; ' + version.precision_reason if version.precision_reason else ''})"
            f"  cache {'hit' if assessment.cache_hit else 'miss'}  request {assessment.request_id}"
            f"  total {assessment.total_ms:.0f} ms"
            + (f"  DEGRADED: {', '.join(assessment.degraded)}" if assessment.degraded else ""),
            style="grey50",
        )
    )
