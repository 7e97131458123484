"""The phoneme-level vocabulary the server names labels with when a request sends none.

Shipped as JSON (generated from quran-transcript's alphabet, checked against it by a test) so
the alignment image does not need quran-transcript at run time.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

BLANK_ID = 0


@cache
def default_vocabulary() -> tuple[str, ...]:
    """Labels indexed by model id; id 0 is the CTC blank."""
    text = resources.files(__package__).joinpath("phoneme_vocab.json").read_text(encoding="utf-8")
    labels = json.loads(text)["labels"]
    return tuple(str(label) for label in labels)
