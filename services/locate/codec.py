"""The stored form of a PassageIndex: versioned, compact, and only data (never pickle).

Value: ``MQLX`` + one format-version byte + zlib(payload). Payload: a 4-byte little-endian
length, a UTF-8 JSON header of that length, then the arrays the header lists, back to back
(name, numpy dtype string, element count):

- ``phonemes`` u1: the phoneme string as model vocabulary ids (1..42; one byte a phoneme, where
  UTF-8 takes two);
- ``ayah_surah`` u1, ``ayah_number`` u2, ``ayah_words`` u2: one row per ayah in mushaf order;
- ``word_step`` u2: word start minus the previous word's start (the first: its start), so the
  values stay small and repetitive; ``word_length`` u2: end minus start; ``word_wasl`` u1.

The header also carries the phonetizer version and the MoshafAttributes values, which a reader
checks against what it asked for. The whole Quran stores in about 0.3 MB and decodes in tens of
milliseconds.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from services.locate import script
from services.locate.index import PassageIndex

MAGIC = b"MQLX"
FORMAT_VERSION = 1
_HEADER = MAGIC + bytes([FORMAT_VERSION])
# The whole Quran's payload is about 1.5 MB; a bound keeps a corrupt value from inflating
# without limit.
_MAX_PAYLOAD = 32 * 1024 * 1024


class InvalidIndexValue(Exception):
    """A stored value that is not an index this version can read."""


def encode(index: PassageIndex) -> bytes:
    ids = script.to_ids(index.phonemes)
    if len(ids) != len(index.phonemes):
        raise ValueError("the index holds symbols outside the phoneme vocabulary")
    starts = index.word_start.astype(np.int64)
    steps = np.diff(starts, prepend=0)
    lengths = index.word_end.astype(np.int64) - starts
    arrays: dict[str, npt.NDArray[Any]] = {
        "phonemes": _narrow(ids, np.uint8),
        "ayah_surah": _narrow(index.ayah_surah, np.uint8),
        "ayah_number": _narrow(index.ayah_number, np.uint16),
        "ayah_words": _narrow(np.diff(index.ayah_first_word), np.uint16),
        "word_step": _narrow(steps, np.uint16),
        "word_length": _narrow(lengths, np.uint16),
        "word_wasl": index.word_wasl.astype(np.uint8),
    }
    header = {
        "format": FORMAT_VERSION,
        "phonetizer_version": index.phonetizer_version,
        "moshaf": index.moshaf,
        "arrays": [[name, array.dtype.str, len(array)] for name, array in arrays.items()],
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    payload = struct.pack("<I", len(head)) + head + b"".join(a.tobytes() for a in arrays.values())
    return _HEADER + zlib.compress(payload, 6)


def _narrow(values: npt.NDArray[Any], dtype: type[np.unsignedinteger[Any]]) -> npt.NDArray[Any]:
    limits = np.iinfo(dtype)
    if len(values) and (values.min() < limits.min or values.max() > limits.max):
        raise ValueError(f"index values outside {np.dtype(dtype).name}: the format cannot hold this index")
    return values.astype(dtype)


def decode(raw: bytes) -> PassageIndex:
    """The index a value holds; InvalidIndexValue when it is not one this version reads."""
    if raw[: len(MAGIC)] != MAGIC:
        raise InvalidIndexValue("not a passage index value (magic bytes differ)")
    version = raw[len(MAGIC)] if len(raw) > len(MAGIC) else None
    if version != FORMAT_VERSION:
        raise InvalidIndexValue(f"passage index format {version} is not {FORMAT_VERSION}")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(raw[len(_HEADER) :], _MAX_PAYLOAD)
    except zlib.error as exc:
        raise InvalidIndexValue(f"passage index value does not decompress: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise InvalidIndexValue("passage index value is truncated or too large")
    try:
        return _parse(payload)
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise InvalidIndexValue(f"passage index value is malformed: {exc}") from exc


def _parse(payload: bytes) -> PassageIndex:
    (head_len,) = struct.unpack_from("<I", payload)
    header = json.loads(payload[4 : 4 + head_len])
    if header["format"] != FORMAT_VERSION:
        raise ValueError(f"header format {header['format']}")
    arrays: dict[str, npt.NDArray[Any]] = {}
    offset = 4 + head_len
    for name, dtype, count in header["arrays"]:
        array = np.frombuffer(payload, dtype=np.dtype(dtype), count=int(count), offset=offset)
        offset += array.nbytes
        arrays[name] = array
    if offset != len(payload):
        raise ValueError("bytes left after the arrays")
    starts = np.cumsum(arrays["word_step"].astype(np.int64)).astype(np.int32)
    return PassageIndex(
        phonetizer_version=str(header["phonetizer_version"]),
        moshaf=dict(header["moshaf"]),
        phonemes=script.from_ids(arrays["phonemes"]),
        ayah_surah=arrays["ayah_surah"].astype(np.int32),
        ayah_number=arrays["ayah_number"].astype(np.int32),
        ayah_first_word=np.concatenate(([0], np.cumsum(arrays["ayah_words"].astype(np.int64)))).astype(np.int32),
        word_start=starts,
        word_end=(starts + arrays["word_length"].astype(np.int32)).astype(np.int32),
        word_wasl=arrays["word_wasl"].astype(bool),
    )
