"""Configuration from environment variables, each declared once with its default and meaning.

Every setting is declared with :func:`setting`, which records it in a registry; the README's
configuration table is rendered from that registry (``python -m services.common.config``),
and a test keeps the two in step, so a variable cannot exist without being documented.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


_PARSERS: dict[type, Callable[[str], object]] = {
    str: str,
    int: int,
    float: float,
    bool: _parse_bool,
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, type, default, allowed values, and what it does.

    The allowed values (a range for numbers, a list or a pattern for text) are part of the
    declaration, so every service validates the same way and the README shows them; a value
    outside them is a ConfigError naming the variable and what it accepts.
    """

    name: str
    default: T
    help: str
    kind: type
    group: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    # A regular expression a text value must match in full (case-insensitively), and its words.
    pattern: str = ""
    pattern_doc: str = ""

    def allowed(self) -> str:
        """The allowed values in words ("" when anything of the type goes)."""
        if self.choices:
            return "one of " + ", ".join("(unset)" if c == "" else f"`{c}`" for c in self.choices)
        if self.pattern:
            return self.pattern_doc or f"matching `{self.pattern}`"
        if self.ge is not None and self.le is not None:
            return f"{_number(self.ge)}..{_number(self.le)}"
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(f"{op} {_number(bound)}" for op, bound in bounds if bound is not None)

    def check(self, value: T) -> T:
        """The value when it is allowed, else a ConfigError naming the variable and the range."""
        problem = self._problem(value)
        if problem:
            raise ConfigError(f"{self.name}={value!r}: {problem}")
        return value

    def _problem(self, value: object) -> str:
        if self.kind is float and not math.isfinite(value):  # type: ignore[arg-type]
            return "must be a finite number" + (f" ({self.allowed()})" if self.allowed() else "")
        if self.kind in (int, float):
            number = float(value)  # type: ignore[arg-type]
            bad = (
                (self.ge is not None and number < self.ge)
                or (self.gt is not None and number <= self.gt)
                or (self.le is not None and number > self.le)
                or (self.lt is not None and number >= self.lt)
            )
            closed = self.ge is not None and self.le is not None
            return f"must be {'within ' if closed else ''}{self.allowed()}" if bad else ""
        if self.kind is str:
            text = str(value)
            if self.choices and text not in self.choices:
                return f"expected {self.allowed()}"
            if self.pattern and not re.fullmatch(self.pattern, text, flags=re.IGNORECASE):
                return f"expected {self.allowed()}"
        return ""

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        env = os.environ if environ is None else environ
        raw = env.get(self.name)
        if raw is None or (raw == "" and self.kind is not str):
            return self.default
        if self.kind is str:
            # A constrained value is a keyword or a name: surrounding blanks are never meant.
            return self.check(raw.strip() if (self.choices or self.pattern) else raw)  # type: ignore[arg-type]
        try:
            parsed = _PARSERS[self.kind](raw)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{self.name}={raw!r} is not a valid {self.kind.__name__}: {exc}") from exc
        return self.check(parsed)  # type: ignore[arg-type]


REGISTRY: dict[str, Setting[object]] = {}


def setting(
    name: str,
    default: T,
    help: str,
    *,
    group: str = "common",
    kind: type | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | list[str] = (),
    pattern: str = "",
    pattern_doc: str = "",
) -> Setting[T]:
    """Declares an environment variable: its name, default and meaning, and optionally the values
    it allows (``ge``/``gt``/``le``/``lt`` for numbers; ``choices`` or a ``pattern`` for text).
    ``get`` validates against them. Declaring the same name twice must agree."""
    resolved = kind if kind is not None else type(default)
    if resolved not in _PARSERS:
        raise TypeError(f"unsupported setting type {resolved!r} for {name}")
    if (ge, gt, le, lt) != (None,) * 4 and resolved not in (int, float):
        raise TypeError(f"{name}: a numeric range on a {resolved.__name__} setting")
    if (choices or pattern) and resolved is not str:
        raise TypeError(f"{name}: choices or a pattern on a {resolved.__name__} setting")
    declared: Setting[T] = Setting(
        name=name,
        default=default,
        help=help,
        kind=resolved,
        group=group,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        choices=tuple(choices),
        pattern=pattern,
        pattern_doc=pattern_doc,
    )
    # The default must be allowed too: a declaration that contradicts itself fails at import.
    declared.check(default)
    previous = REGISTRY.get(name)
    if previous is not None and previous != declared:
        raise ValueError(f"setting {name} declared twice with different definitions")
    REGISTRY[name] = declared  # type: ignore[assignment]
    return declared


def load_all_settings() -> dict[str, Setting[object]]:
    """Imports every module that declares settings so that the registry is complete."""
    import importlib

    for module in (
        "services.common.settings",
        "services.asr.config",
        "services.alignment.config",
        "services.tajweed.config",
        "services.prosody.config",
        "services.gateway.config",
        "services.gateway.reference.recitation_settings",
    ):
        importlib.import_module(module)
    return dict(REGISTRY)


def _format_default(value: object) -> str:
    if value == "":
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def markdown_table() -> str:
    """The configuration table of the README, grouped by service."""
    settings = load_all_settings()
    lines = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    order = ["common", "asr", "alignment", "tajweed", "gateway"]
    for group in order + sorted({s.group for s in settings.values()} - set(order)):
        for item in sorted((s for s in settings.values() if s.group == group), key=lambda s: s.name):
            default = _format_default(item.default).replace("|", "\\|")
            allowed = item.allowed().replace("|", "\\|")
            lines.append(f"| `{item.name}` | `{default}` | {allowed} | {item.help} |")
    return "\n".join(lines)


START_MARK = "<!-- config-table:start -->"
END_MARK = "<!-- config-table:end -->"


def readme_with_table(readme: str) -> str:
    """The README text with the table between its markers replaced by the current one."""
    head, start, rest = readme.partition(START_MARK)
    _, end, tail = rest.partition(END_MARK)
    if not start or not end:
        raise ValueError(f"the README has no {START_MARK} ... {END_MARK} markers")
    return f"{head}{START_MARK}\n{markdown_table()}\n{END_MARK}{tail}"


def main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="print the configuration table, or write it into a README")
    parser.add_argument("--write-readme", type=Path, help="replace the table between the README's markers")
    args = parser.parse_args(argv)
    if args.write_readme is not None:
        args.write_readme.write_text(readme_with_table(args.write_readme.read_text()))
        return 0
    sys.stdout.write(markdown_table() + "\n")
    return 0


if __name__ == "__main__":
    # Run as a script this file is `__main__`, a second copy of the module with an empty registry:
    # use the real one, which the settings modules register into.
    from services.common import config as _registry  # noqa: PLW0406

    sys.exit(_registry.main())
