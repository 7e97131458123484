"""The passage index beside the references: one cached value per (phonetizer, reading, scope).

Key: ``locate-index:f{format}:quran-transcript@{version}:m{moshaf digest}``, with
``:s{digest of the surah list}`` appended for an index of some surahs only, e.g.
``locate-index:f1:quran-transcript@0.6.4:m3f2a09c1d4e7``. The moshaf digest is the reference
cache's (`reference.moshaf.digest`), always present: the index depends on the reading and on the
phonetizer, never on the model, so unlike a reference key it carries no model part. Keys never
contain braces or whitespace (a Redis Cluster hash tag; see reference/cache.py).

The store is any `ReferenceStore` (Redis behind its breaker, or the in-process LRU). Reading
fails open as the reference service does: a store that cannot answer, or a value this version
cannot read or that was built for something else, means building (about 25 s on two cores)
and writing the new value back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.cache import ReferenceStore, StoreUnavailable
from services.locate import codec
from services.locate.build import DEFAULT_WORKERS, build_index
from services.locate.index import PassageIndex

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 2_592_000
_FORBIDDEN_IN_KEY = re.compile(r"[{}\s]")


def index_key(phonetizer_version: str, moshaf_values: dict[str, Any], surahs: Iterable[int] | None = None) -> str:
    if not phonetizer_version:
        raise ValueError("an index key needs the phonetizer's version")
    version = _FORBIDDEN_IN_KEY.sub("_", phonetizer_version)
    key = f"locate-index:f{codec.FORMAT_VERSION}:quran-transcript@{version}:m{moshaf_mod.digest(moshaf_values)}"
    scope = _scope(surahs)
    if scope is not None:
        key += f":s{hashlib.sha256(','.join(map(str, scope)).encode()).hexdigest()[:12]}"
    return key


def _scope(surahs: Iterable[int] | None) -> tuple[int, ...] | None:
    """The surah list of a partial index; None for the whole mushaf."""
    if surahs is None:
        return None
    chosen = tuple(sorted(set(surahs)))
    return None if chosen == tuple(range(1, quran.SURAH_COUNT + 1)) else chosen


async def store_index(store: ReferenceStore, key: str, index: PassageIndex, ttl_s: int = DEFAULT_TTL_S) -> None:
    await store.set(key, codec.encode(index), ttl_s)


async def load_index(
    store: ReferenceStore, key: str, moshaf_values: dict[str, Any], surahs: Iterable[int] | None = None
) -> PassageIndex | None:
    """The stored index, or None when the key is absent or its value is not this version's index
    of this reading and scope (logged: the caller rebuilds and overwrites). StoreUnavailable
    propagates."""
    raw = await store.get(key)
    if raw is None:
        return None
    try:
        index = codec.decode(raw)
    except codec.InvalidIndexValue as exc:
        log.warning("cached passage index %s rebuilt: %s", key, exc)
        return None
    expected_scope = _scope(surahs)
    problem = None
    if index.phonetizer_version != quran.phonetizer_version():
        problem = f"built by quran-transcript {index.phonetizer_version}, this is {quran.phonetizer_version()}"
    elif index.moshaf != moshaf_values:
        problem = "built for another reading"
    elif _scope(index.surahs) != expected_scope:
        problem = "built for other surahs"
    if problem is not None:
        log.warning("cached passage index %s rebuilt: %s", key, problem)
        return None
    return index


@dataclass(frozen=True)
class CachedIndex:
    index: PassageIndex
    key: str
    cache_hit: bool
    # Time spent building (0 on a hit) and reading the store, seconds.
    build_s: float
    load_s: float


class IndexCache:
    """Cache-aside for passage indexes with one build per key in flight at a time."""

    def __init__(
        self,
        store: ReferenceStore,
        *,
        fallback: ReferenceStore | None = None,
        ttl_s: int = DEFAULT_TTL_S,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.store = store
        self.fallback = fallback
        self.ttl_s = ttl_s
        self.workers = workers
        self._inflight: dict[str, asyncio.Future[CachedIndex]] = {}

    async def get(
        self, moshaf_values: dict[str, Any] | None = None, *, surahs: Iterable[int] | None = None
    ) -> CachedIndex:
        """The index for validated MoshafAttributes values (the defaults when None) and the
        surahs (the whole mushaf when None), from the store or built (blocking work runs in a
        worker thread, the phonetizing in a process pool)."""
        values = dict(moshaf_values) if moshaf_values is not None else moshaf_mod.default_values()
        scope = _scope(surahs)
        key = index_key(quran.phonetizer_version(), values, scope)
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._lookup(key, values, scope))
            self._inflight[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # Shielded: a caller that gives up must not cancel the build the others wait on.
        return await asyncio.shield(flight)

    def _landed(self, key: str, flight: asyncio.Future[CachedIndex]) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if not flight.cancelled():
            flight.exception()

    async def _lookup(self, key: str, values: dict[str, Any], scope: tuple[int, ...] | None) -> CachedIndex:
        store: ReferenceStore | None = self.store
        started = time.perf_counter()
        try:
            index = await load_index(self.store, key, values, scope)
        except StoreUnavailable as exc:
            log.debug("passage index cache read failed open: %s", exc)
            store = self.fallback
            index = await load_index(store, key, values, scope) if store is not None else None
        load_s = time.perf_counter() - started
        if index is not None:
            return CachedIndex(index, key, cache_hit=True, build_s=0.0, load_s=load_s)

        started = time.perf_counter()
        index = await asyncio.to_thread(build_index, values, surahs=scope, workers=self.workers)
        build_s = time.perf_counter() - started
        if store is not None:
            try:
                await store_index(store, key, index, self.ttl_s)
            except StoreUnavailable as exc:
                log.debug("passage index cache write failed open: %s", exc)
                if self.fallback is not None:
                    await store_index(self.fallback, key, index, self.ttl_s)
        return CachedIndex(index, key, cache_hit=False, build_s=build_s, load_s=load_s)
