"""Configuration from environment variables, each declared once with its default and meaning.

Every setting is declared with :func:`setting`, which records it in a registry; the README's
configuration table is rendered from that registry (``python -m services.common.config``),
and a test keeps the two in step, so a variable cannot exist without being documented.
"""

from __future__ import annotations

import os
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


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, default, type, and what it does."""

    name: str
    default: T
    help: str
    kind: type
    group: str

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        env = os.environ if environ is None else environ
        raw = env.get(self.name)
        if raw is None or (raw == "" and self.kind is not str):
            return self.default
        try:
            return self.kind(raw) if self.kind is str else _PARSERS[self.kind](raw)  # type: ignore[return-value]
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{self.name}={raw!r} is not a valid {self.kind.__name__}: {exc}") from exc


REGISTRY: dict[str, Setting[object]] = {}


def setting(name: str, default: T, help: str, *, group: str = "common", kind: type | None = None) -> Setting[T]:
    """Declares an environment variable. Declaring the same name twice must agree."""
    resolved = kind if kind is not None else type(default)
    if resolved not in _PARSERS:
        raise TypeError(f"unsupported setting type {resolved!r} for {name}")
    declared: Setting[T] = Setting(name=name, default=default, help=help, kind=resolved, group=group)
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
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A service module not written yet; a missing third-party package is a real error.
            if exc.name is None or not exc.name.startswith("services."):
                raise
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
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    order = ["common", "asr", "alignment", "tajweed", "gateway"]
    for group in order + sorted({s.group for s in settings.values()} - set(order)):
        for item in sorted((s for s in settings.values() if s.group == group), key=lambda s: s.name):
            default = _format_default(item.default).replace("|", "\\|")
            lines.append(f"| `{item.name}` | `{default}` | {item.help} |")
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
