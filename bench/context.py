"""What a benchmark run hands its sections: options, machine, checkpoint, clips, and the results
other sections (the targets table) read."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.clips import Clip, clip
from bench.common import Machine, Provenance, command_line
from bench.models import Assets, Backend, backends


@dataclass
class Context:
    args: argparse.Namespace
    machine: Machine
    assets: Assets
    cache_dir: Path
    work_dir: Path
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return int(self.args.runs)

    def clips(self, durations: str) -> list[Clip]:
        return [clip(float(x)) for x in durations.split(",") if x.strip()]

    def backends(self, keys: str) -> list[Backend]:
        return backends(keys)

    def provenance(self) -> Provenance:
        return Provenance(self.machine, command_line())

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"


@dataclass
class Section:
    """A block of docs/benchmarks.md."""

    key: str
    title: str
    lines: list[str]
    provenance: Provenance | None = None

    def markdown(self) -> list[str]:
        body = [f"## {self.title}", ""]
        if self.provenance is not None:
            body += [self.provenance.line(), ""]
        return body + self.lines
