"""The index's stored form and its cache: a round trip through the in-process LRU and a real
Redis, the key scheme, values this version must refuse, and failing open."""

from __future__ import annotations

import asyncio
import zlib

import numpy as np
import pytest

from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.cache import MemoryStore, RedisStore
from services.gateway.reference.settings import ReferenceCacheConfig
from services.locate import codec
from services.locate.build import build_index
from services.locate.cache import IndexCache, index_key, load_index, store_index
from services.locate.index import PassageIndex
from tests.conftest import RedisServer, free_port

SURAHS = (112, 113, 114)
COLUMNS = ("ayah_surah", "ayah_number", "ayah_first_word", "word_start", "word_end", "word_wasl")


def assert_same(a: PassageIndex, b: PassageIndex) -> None:
    assert a.phonemes == b.phonemes
    assert a.phonetizer_version == b.phonetizer_version
    assert a.moshaf == b.moshaf
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column


@pytest.fixture(scope="module")
def few() -> PassageIndex:
    return build_index(surahs=SURAHS, workers=1)


def test_the_stored_form_reads_back_as_the_same_index(small_index: PassageIndex, few: PassageIndex) -> None:
    for index in (small_index, few):
        raw = codec.encode(index)
        assert raw.startswith(b"MQLX\x01")
        assert_same(codec.decode(raw), index)
    # One byte a phoneme before zlib, so the value is well under the phonemes' UTF-8 size.
    assert len(codec.encode(small_index)) < len(small_index.phonemes.encode()) / 3


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: b"MQR" + raw[3:], "magic"),
        (lambda raw: raw[:4] + b"\x02" + raw[5:], "format 2"),
        (lambda raw: raw[:-7], "truncated"),
        (lambda raw: raw[:5] + b"not zlib at all", "decompress"),
        (lambda raw: raw[:5] + zlib.compress(zlib.decompress(raw[5:])[:-3]), "malformed"),
    ],
)
def test_values_this_version_cannot_read_are_refused(few: PassageIndex, mangle: object, message: str) -> None:
    assert callable(mangle)
    with pytest.raises(codec.InvalidIndexValue, match=message):
        codec.decode(mangle(codec.encode(few)))


def test_a_phoneme_outside_the_vocabulary_is_refused(few: PassageIndex) -> None:
    payload = bytearray(zlib.decompress(codec.encode(few)[5:]))
    head = int.from_bytes(payload[:4], "little")
    payload[4 + head] = 0  # the first phoneme: id 0 is the CTC blank, not a phoneme
    with pytest.raises(codec.InvalidIndexValue, match="vocabulary"):
        codec.decode(b"MQLX\x01" + zlib.compress(bytes(payload)))


def test_keys_name_the_phonetizer_the_reading_and_the_scope() -> None:
    defaults = moshaf_mod.default_values()
    other = moshaf_mod.to_dict(moshaf_mod.to_proto({**defaults, "madd_monfasel_len": 2}))
    key = index_key("0.6.4", defaults)
    assert key == f"locate-index:f{codec.FORMAT_VERSION}:quran-transcript@0.6.4:m{moshaf_mod.digest(defaults)}"
    assert index_key("0.6.4", other) != key
    assert index_key("0.6.5", defaults) != key
    assert index_key("0.6.4", defaults, range(1, 115)) == key
    assert index_key("0.6.4", defaults, SURAHS).startswith(key + ":s")
    assert index_key("0.6.4", defaults, (114, 113, 112, 113)) == index_key("0.6.4", defaults, SURAHS)
    assert "{" not in index_key("{x} y", defaults) and " " not in index_key("{x} y", defaults)


async def test_the_local_cache_builds_once_then_serves_the_stored_index() -> None:
    store = MemoryStore(8)
    cache = IndexCache(store, workers=1)
    first, second = await asyncio.gather(cache.get(surahs=SURAHS), cache.get(surahs=SURAHS))
    # Concurrent callers share one build.
    assert first is second and not first.cache_hit and first.build_s > 0
    assert len(store) == 1
    again = await cache.get(moshaf_mod.default_values(), surahs=SURAHS)
    assert again.cache_hit and again.build_s == 0.0 and again.key == first.key
    assert_same(again.index, first.index)


async def test_a_value_for_another_reading_or_scope_is_rebuilt(few: PassageIndex) -> None:
    store = MemoryStore(8)
    defaults = moshaf_mod.default_values()
    key = index_key(quran.phonetizer_version(), defaults, SURAHS)
    await store_index(store, key, few)
    assert await load_index(store, key, defaults, SURAHS) is not None
    assert await load_index(store, key, {**defaults, "madd_monfasel_len": 2}, SURAHS) is None
    assert await load_index(store, key, defaults, (112, 113)) is None
    await store.set(key, b"MQLX\x01garbage", 60)
    assert await load_index(store, key, defaults, SURAHS) is None
    # The cache overwrites what it could not use.
    rebuilt = await IndexCache(store, workers=1).get(surahs=SURAHS)
    assert not rebuilt.cache_hit
    assert await load_index(store, key, defaults, SURAHS) is not None


async def test_a_round_trip_through_redis(redis_server: RedisServer, few: PassageIndex) -> None:
    store = RedisStore.from_config(ReferenceCacheConfig(redis_url=redis_server.url))
    try:
        key = index_key(quran.phonetizer_version(), moshaf_mod.default_values(), SURAHS)
        await store.client.delete(key)
        built = await IndexCache(store, workers=1).get(surahs=SURAHS)
        assert not built.cache_hit
        assert await store.client.ttl(key) > 0
        served = await IndexCache(store, workers=1).get(surahs=SURAHS)
        assert served.cache_hit
        assert_same(served.index, few)
    finally:
        await store.close()


async def test_an_unreachable_redis_fails_open_to_the_fallback() -> None:
    dead = RedisStore.from_config(ReferenceCacheConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    fallback = MemoryStore(4, name="fallback")
    try:
        cache = IndexCache(dead, fallback=fallback, workers=1)
        built = await cache.get(surahs=SURAHS)
        assert not built.cache_hit and len(fallback) == 1
        served = await cache.get(surahs=SURAHS)
        assert served.cache_hit
    finally:
        await dead.close()
