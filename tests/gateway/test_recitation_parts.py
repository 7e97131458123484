"""The parts of the reference recitations that need no mesh: cutting a recording of several
ayahs at the midpoints between their aligned words, the durable store's registry, and the
cache value format 2 (read by the text path as its reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, prosody_pb2
from services.gateway.reference.cache import InvalidValue, decode_value, encode_value
from services.gateway.reference.recitation_entry import decode_entry, encode_entry
from services.gateway.reference.recitation_store import RecitationStore
from services.gateway.reference.recitations import EDGE_S, split_by_ayah


def test_split_by_ayah_cuts_between_ayahs() -> None:
    reference = common_pb2.Reference(
        words=[common_pb2.ReferenceWord(ayah=a) for a in (1, 1, 2, 2, 3)],
    )
    spans = [(0.5, 1.0), (1.0, 2.0), (3.0, 3.5), (3.5, 5.0), (6.0, 7.5)]
    alignment = common_pb2.Alignment(
        words=[
            common_pb2.AlignedWord(word_index=i, span=common_pb2.FrameSpan(start_s=s, end_s=e))
            for i, (s, e) in enumerate(spans)
        ]
    )
    cuts = split_by_ayah(reference, alignment, duration_s=8.0)
    assert cuts == {1: (0.0, 2.5), 2: (2.5, 5.5), 3: (5.5, 8.0)}
    # Ayahs that run into each other still keep EDGE_S of audio either side of their words.
    tight = common_pb2.Alignment(
        words=[
            common_pb2.AlignedWord(word_index=0, span=common_pb2.FrameSpan(start_s=0.0, end_s=1.0)),
            common_pb2.AlignedWord(word_index=2, span=common_pb2.FrameSpan(start_s=1.0, end_s=2.0)),
        ]
    )
    cuts = split_by_ayah(reference, tight, duration_s=2.0)
    assert cuts[1] == (0.0, pytest.approx(1.0 + EDGE_S))
    assert cuts[2] == (pytest.approx(1.0 - EDGE_S), 2.0)


def test_store_registers_defaults_and_refuses_what_it_lacks(tmp_path: Path) -> None:
    store = RecitationStore(tmp_path)
    tone = (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    first = store.put(1, 1, "husary", tone, make_default=False)
    assert first.is_default  # the first reciter of an ayah is its default
    assert not store.put(1, 1, "minshawi", tone, make_default=False).is_default
    assert store.put(1, 1, "sudais", tone, make_default=True).is_default
    assert store.resolve(1, 1, "") == "sudais"
    assert store.resolve(1, 1, "husary") == "husary"
    assert [(r.reciter, r.is_default) for r in store.list()] == [
        ("husary", False),
        ("minshawi", False),
        ("sudais", True),
    ]
    loaded = store.load(1, 1, "husary")
    assert np.max(np.abs(loaded - tone)) < 1e-4  # 16-bit PCM
    store.remove(1, 1, "sudais")
    assert store.resolve(1, 1, "") in {"husary", "minshawi"}
    with pytest.raises(InvalidArgument, match="'nobody' has no recitation of 1:1"):
        store.resolve(1, 1, "nobody")
    with pytest.raises(InvalidArgument, match="no reference recitation is registered for 1:2"):
        store.resolve(1, 2, "")
    with pytest.raises(InvalidArgument, match="reciter name"):
        store.put(1, 1, "../../etc", tone, make_default=False)
    with pytest.raises(InvalidArgument, match="no reference recitation by 'sudais'"):
        store.remove(1, 1, "sudais")


def test_entry_format_2_holds_the_reference_and_the_recitations() -> None:
    reference = common_pb2.Reference(uthmani="بِسْمِ", phonemes="بسم")
    entry = prosody_pb2.ReferenceEntry(
        reference=reference,
        recitations=[prosody_pb2.ReciterAnalysis(reciter="husary", audio_sha256="ab")],
        model_version="m@1",
    )
    raw = encode_entry(entry)
    assert raw[:4] == b"MQR\x02"
    assert decode_entry(raw) == entry
    assert decode_value(raw) == reference  # the text path reads its reference out of it
    old = encode_value(reference.SerializeToString())
    assert decode_entry(old) == prosody_pb2.ReferenceEntry(reference=reference)
    with pytest.raises(InvalidValue):
        decode_entry(b"MQR\x02" + b"not zlib")
