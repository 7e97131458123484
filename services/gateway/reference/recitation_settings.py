"""Settings of the reference recitations and the gateway's link to the prosody stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import setting
from services.common.settings import PROSODY

PROSODY_TARGET = setting(
    "MUAALEM_PROSODY_TARGET",
    f"127.0.0.1:{PROSODY.port.default}",
    "Address of the prosody stage (comparisons with reference recitations); empty turns comparisons off.",
    group="gateway",
)
RECITATIONS_DIR = setting(
    "MUAALEM_RECITATIONS_DIR",
    "~/.cache/muaalem/recitations",
    "Durable store of the reference recitations' audio and registry (a PersistentVolume in Kubernetes); "
    "their analyses are cached with the references and recomputed from here when evicted.",
    group="gateway",
)

ADMIN_KEY_NAMES = setting(
    "MUAALEM_ADMIN_KEY_NAMES",
    "",
    "Comma-separated names of the API keys (the `name` of `name:sha256` in the keys file) allowed to add "
    "and remove reference recitations over the API; empty: nobody (the `muaalem reference` CLI still works).",
    group="gateway",
)


@dataclass(frozen=True)
class RecitationConfig:
    prosody_target: str
    directory: Path
    admin_key_names: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RecitationConfig:
        return cls(
            prosody_target=PROSODY_TARGET.get(environ).strip(),
            directory=Path(RECITATIONS_DIR.get(environ)).expanduser(),
            admin_key_names=frozenset(n.strip() for n in ADMIN_KEY_NAMES.get(environ).split(",") if n.strip()),
        )
