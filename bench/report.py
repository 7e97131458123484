"""docs/benchmarks.md: an introduction, then one block per section between markers. A run that
measures only some sections replaces only their blocks and keeps the others (each block carries
its own date, command and machine)."""

from __future__ import annotations

import re
from pathlib import Path

from bench.context import Section

ORDER = (
    "machine",
    "targets",
    "latency",
    "memory",
    "asr-memory",
    "peer",
    "throughput",
    "live",
    "streaming",
    "cpu-options",
    "openvino-shapes",
    "profile",
    "gpu",
    "alignment",
    "tajweed",
    "prosody",
)
_BLOCK = re.compile(r"<!-- bench:(?P<key>[a-z-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=key) -->", re.S)

INTRO = """# Benchmarks

Every figure below was produced by `make bench` (`python -m bench.run`), which writes this file;
each section says when, with which command and on which machine (CPU, cores, memory, torch and
onnxruntime versions, load average). Speed is measured here and reported, never asserted by a test.

```bash
make bench                                          # everything (tens of minutes on 2 cores)
.venv/bin/python -m bench.run --only latency,peer   # some sections; the others stay as they are
.venv/bin/python -m bench.run --runs 20             # more runs per figure
.venv/bin/python -m bench.run --quick               # smoke check: tiny checkpoint, 1 run, to a temp file
.venv/bin/python -m bench.run --help                # every option
```

The model is the full-size architecture of `obadx/muaalem-model-v3_2` (606 M parameters) with
**random weights** (`muaalem dev-model DIR --size full`): the real weights cannot be downloaded
here. Speed does not depend on the weights, but what the model decodes does: with random weights
no clip decodes as its passage, so every assessment runs with `run_rules_on_mismatch` and the
content check always takes its mismatch path (a phonetic search of what was recited). Pass
`--checkpoint DIR` to measure real weights.
"""


def _blocks(text: str) -> dict[str, str]:
    return {m.group("key"): m.group("body").rstrip("\n") for m in _BLOCK.finditer(text)}


def _placeholder(key: str) -> str:
    return f"## {key}\n\n_Not measured yet: `python -m bench.run --only {key}`._"


def _epilogue(text: str) -> str:
    """What follows the last block: figures written by hand (a script's run pasted in), which a
    run of some sections must keep as they are."""
    ends = list(re.finditer(r"<!-- /bench:[a-z-]+ -->\n", text))
    return text[ends[-1].end() :].strip("\n") if ends else ""


def compose(previous: str, sections: list[Section]) -> str:
    blocks = _blocks(previous)
    for section in sections:
        blocks[section.key] = "\n".join(section.markdown()).rstrip("\n")
    keys = list(ORDER) + sorted(k for k in blocks if k not in ORDER)
    parts = [INTRO.rstrip("\n")]
    for key in keys:
        body = blocks.get(key) or _placeholder(key)
        parts.append(f"<!-- bench:{key} -->\n{body}\n<!-- /bench:{key} -->")
    epilogue = _epilogue(previous)
    if epilogue:
        parts.append(epilogue)
    return "\n\n".join(parts) + "\n"


def write(path: Path, sections: list[Section], *, fresh: bool = False) -> None:
    previous = "" if fresh or not path.exists() else path.read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compose(previous, sections), encoding="utf-8")
