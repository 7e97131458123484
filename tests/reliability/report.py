"""Profiles of the suite and the markdown report of what it measured."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """How much load each test applies: SHORT in `make test`, FULL in `make reliability`."""

    name: str
    load_clients: int
    load_requests: int  # per client
    http_clients: int
    http_requests: int  # per client
    fault_clients: int
    redis_fault_s: float  # length of the load run around the Redis kill
    asr_fault_s: float  # length of the load run around the asr kill
    prosody_fault_s: float  # length of the load run around the prosody kill (without its restart)
    slow_requests: int  # requests per slow-stage scenario
    drain_requests: int  # requests in flight when the gateway gets SIGTERM
    fuzz_examples: int  # generated inputs per front door of the fuzz suite


SHORT = Profile(
    name="short",
    load_clients=16,
    load_requests=4,
    http_clients=4,
    http_requests=3,
    fault_clients=4,
    redis_fault_s=9.0,
    asr_fault_s=14.0,
    prosody_fault_s=8.0,
    slow_requests=2,
    drain_requests=6,
    fuzz_examples=60,
)
FULL = Profile(
    name="full",
    load_clients=16,
    load_requests=200,
    http_clients=8,
    http_requests=40,
    fault_clients=8,
    redis_fault_s=40.0,
    asr_fault_s=45.0,
    prosody_fault_s=30.0,
    slow_requests=12,
    drain_requests=16,
    fuzz_examples=500,
)


PROFILE_FIELDS = {
    "load_clients": "load clients",
    "load_requests": "requests each",
    "http_clients": "HTTP clients",
    "http_requests": "requests each",
    "fault_clients": "clients in fault runs",
    "redis_fault_s": "Redis run s",
    "asr_fault_s": "asr run s",
    "prosody_fault_s": "prosody run s",
    "slow_requests": "requests per slow case",
    "drain_requests": "in flight at SIGTERM",
    "fuzz_examples": "fuzz inputs per door",
}


@dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row) + " |")
        return "\n".join(lines)


SECTIONS = {
    "startup": "Start-up",
    "bad_input": "Bad input",
    "fuzz": "Fuzzing the front doors",
    "load": "Load",
    "faults": "Faults under load",
    "security": "Security",
}


@dataclass
class Report:
    profile: Profile
    tables: dict[str, list[Table]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def add(
        self, section: str, title: str, headers: Sequence[str], rows: Iterable[Sequence[object]], note: str = ""
    ) -> None:
        if section not in SECTIONS:
            raise ValueError(f"unknown report section {section!r}")
        table = Table(title, list(headers), [[str(cell) for cell in row] for row in rows], note)
        self.tables.setdefault(section, []).append(table)

    def render(self, *, machine: dict[str, str], command: str) -> str:
        passed = sum(1 for outcome in self.outcomes.values() if outcome == "passed")
        failed = {node: outcome for node, outcome in self.outcomes.items() if outcome not in {"passed", "skipped"}}
        lines = [
            "# Reliability and security: measured figures",
            "",
            "Written by the reliability suite (`tests/reliability`, FULL profile) on the machine below; "
            "every figure is from that run. `make test` runs the same tests in a SHORT profile.",
            "",
            "| | |",
            "|---|---|",
            f"| date | {machine['date']} |",
            f"| command | `{command}` |",
            f"| profile | {self.profile.name} |",
            *(f"| {key} | {value} |" for key, value in machine.items() if key != "date"),
            "| model | the tiny random-weight development checkpoint (`MUAALEM_ASR_DEV_FALLBACK=tiny`): "
            "latencies are the mesh's, not the 600M-parameter model's |",
            f"| tests | {passed} passed, {len(failed)} failed |",
            "",
        ]
        if failed:
            lines += ["**Failed:**", "", *(f"- `{node}`: {outcome}" for node, outcome in failed.items()), ""]
        lines += [
            "Run it again with `make reliability` (this profile; some fifteen minutes on 2 cores, four of them "
            "the fuzz suite's 2,500 inputs). `make test` runs "
            "the same tests in the short profile:",
            "",
            "| profile | " + " | ".join(PROFILE_FIELDS.values()) + " |",
            "|---|" + "---|" * len(PROFILE_FIELDS),
            *(f"| {p.name} | " + " | ".join(str(getattr(p, f)) for f in PROFILE_FIELDS) + " |" for p in (SHORT, FULL)),
            "",
        ]
        for section, heading in SECTIONS.items():
            tables = self.tables.get(section)
            if not tables:
                continue
            lines += [f"## {heading}", ""]
            for table in tables:
                lines += [table.markdown(), ""]
        return "\n".join(lines)
