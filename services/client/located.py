"""The report's line on a located passage (Target.locate): which span was assessed and how sure
the search was, in one line of at most 80 columns, so a doubtful answer is never read as sure."""

from __future__ import annotations

from rich.text import Text

from services.common.pb import gateway_pb2

# 80 columns less the recitation panel's borders and padding, so that it never wraps there.
WIDTH = 76


def place(passage: gateway_pb2.RecognizedPassage) -> str:
    """`112:2`, `114:1-3`, `2:255 w4-2:256 w3` (words counted from 1, the last one included)."""
    start = f"{passage.surah}:{passage.ayah}"
    if passage.start_word:
        start += f" w{passage.start_word + 1}"
    same_surah = passage.end_surah == passage.surah
    if not passage.start_word and same_surah and passage.end_ayah == passage.ayah:
        return start
    end = f"{passage.end_ayah}" if same_surah else f"{passage.end_surah}:{passage.end_ayah}"
    if passage.start_word:
        end = f"{passage.end_surah}:{passage.end_ayah} w{passage.end_word}"
    return f"{start}-{end}"


def located_line(located: gateway_pb2.Located) -> Text:
    passage = located.passage
    numbers = f"score {passage.similarity:.2f}, margin {located.margin:.2f}"
    if located.sure:
        return Text(f"located {place(passage)}, sure: {numbers}"[:WIDTH], style="cyan")
    line = f"located {place(passage)}, NOT SURE: {numbers}"
    others = [place(c) for c in located.candidates]
    if others:
        line += ("; same words at " if located.ambiguous else "; or ") + ", ".join(others)
    if len(line) > WIDTH:
        line = line[: WIDTH - 1] + "…"
    return Text(line, style="bold yellow")
