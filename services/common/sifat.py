"""The ten sifat levels, in the wire contract's order (the Sifat message is their one definition)."""

from __future__ import annotations

from services.common.pb import common_pb2

SIFA_LEVELS: tuple[str, ...] = tuple(
    field.name for field in common_pb2.Sifat.DESCRIPTOR.fields if field.name != "phonemes_group"
)
