"""The reference cache's value format 2: ``MQR`` + 0x02 + zlib(serialized ReferenceEntry), the text
reference of one ayah with the reference recitations' analyses, in one value under the ayah's
key (``{model_version}:{surah}:{ayah}``). Never pickle. cache.decode_payload reads it as its
reference, so the text path needs no change; a format-1 value reads here as an entry with no
recitations yet."""

from __future__ import annotations

import zlib

from google.protobuf.message import DecodeError

from services.common.pb import prosody_pb2
from services.gateway.reference.cache import ENTRY_FORMAT_VERSION, FORMAT_VERSION, MAGIC, InvalidValue, decode_payload

_HEADER = MAGIC + bytes([ENTRY_FORMAT_VERSION])
_MAX_DECODED_BYTES = 64 * 1024 * 1024


def encode_entry(entry: prosody_pb2.ReferenceEntry) -> bytes:
    return _HEADER + zlib.compress(entry.SerializeToString(), 6)


def decode_entry(raw: bytes) -> prosody_pb2.ReferenceEntry:
    """Either format as an entry; InvalidValue when it is neither."""
    if raw[: len(MAGIC) + 1] == MAGIC + bytes([FORMAT_VERSION]):
        from services.common.pb import common_pb2

        return prosody_pb2.ReferenceEntry(reference=common_pb2.Reference.FromString(decode_payload(raw)))
    decode_payload(raw)  # the checks: magic, version, size, the embedded reference parses
    inflater = zlib.decompressobj()
    payload = inflater.decompress(raw[len(_HEADER) :], _MAX_DECODED_BYTES)
    try:
        return prosody_pb2.ReferenceEntry.FromString(payload)
    except DecodeError as exc:
        raise InvalidValue(f"reference entry does not parse: {exc}") from exc
