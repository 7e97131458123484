"""Per-phoneme LLR thresholds: the shipped table, a replacement file, and per-call tables.

The file is JSON: ``{"description": "...", "thresholds": {"<phoneme>": <llr>, ...}}``. The
shipped ``thresholds.json`` explains its defaults in its description. A phoneme absent from
the table uses the default threshold (``MUAALEM_ALIGNMENT_DEFAULT_THRESHOLD``, 0.0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.common.config import ConfigError
from services.common.errors import InvalidArgument


@dataclass(frozen=True)
class ThresholdTable:
    """LLR thresholds by phoneme label, and the one used for labels not in the table."""

    default: float
    per_phoneme: Mapping[str, float]

    def by_id(self, vocabulary: Sequence[str]) -> npt.NDArray[np.float64]:
        """The threshold of every vocabulary id, so tokens look theirs up by id at once."""
        return np.array([self.per_phoneme.get(label, self.default) for label in vocabulary])


def problems(table: Mapping[str, object], vocabulary: Sequence[str]) -> list[str]:
    """What is wrong with a table: labels outside the vocabulary (or the blank), bad values."""
    known = set(vocabulary[1:])
    found = []
    for label, value in table.items():
        if label not in known:
            found.append(f"{label!r} is not a phoneme of the vocabulary")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            found.append(f"the threshold of {label!r} must be a finite number, got {value!r}")
    return found


def _read(text: str, source: str, vocabulary: Sequence[str]) -> dict[str, float]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"threshold file {source} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("thresholds"), dict):
        raise ConfigError(f'threshold file {source} needs an object {{"thresholds": {{phoneme: llr}}}}')
    table: dict[str, object] = document["thresholds"]
    wrong = problems(table, vocabulary)
    if wrong:
        raise ConfigError(f"threshold file {source}: " + "; ".join(wrong))
    return {label: float(value) for label, value in table.items()}  # type: ignore[arg-type]


def load_table(path: str, vocabulary: Sequence[str]) -> dict[str, float]:
    """The table in `path`, or the shipped one when `path` is empty."""
    if not path:
        shipped = resources.files(__package__).joinpath("thresholds.json")
        return _read(shipped.read_text(encoding="utf-8"), "thresholds.json (shipped)", vocabulary)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read threshold file {path}: {exc.strerror or exc}") from exc
    return _read(text, path, vocabulary)


def call_table(
    base: ThresholdTable,
    vocabulary: Sequence[str],
    replacement: Mapping[str, float] | None,
    default: float | None,
) -> ThresholdTable:
    """The table for one call: the server's, or the caller's replacement and default."""
    if not replacement and default is None:
        return base
    if default is not None and not math.isfinite(default):
        raise InvalidArgument(f"options.default_threshold must be finite, got {default}")
    if replacement:
        wrong = problems(replacement, vocabulary)
        if wrong:
            raise InvalidArgument("options.thresholds: " + "; ".join(wrong))
    return ThresholdTable(
        default=base.default if default is None else float(default),
        per_phoneme=dict(replacement) if replacement else base.per_phoneme,
    )
