"""References for the gateway: validated, cached (cache-aside), computed once per key.

`ReferenceService.get` validates the target and attributes first (InvalidArgument before any
cache call), then looks the key up. N concurrent lookups of one key share one flight: one
cache read, at most one phonetizer run (in a worker thread: it is CPU-bound Python) and one
write. The cache fails open: when Redis cannot answer, the lookup phonetizes and the
in-process LRU stands in until Redis is back, so an outage costs latency, never an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis_async

from services.common.pb import common_pb2
from services.gateway.reference import builder, metrics, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference.cache import (
    InvalidValue,
    MemoryStore,
    RedisStore,
    ReferenceStore,
    StoreUnavailable,
    cache_key,
    decode_payload,
    encode_value,
    parse_payload,
)
from services.gateway.reference.settings import ReferenceCacheConfig
from services.gateway.reference.targets import TargetSpec

log = logging.getLogger(__name__)

BuildFn = Callable[[TargetSpec, dict[str, Any]], common_pb2.Reference]


@dataclass(frozen=True)
class ReferenceResult:
    reference: common_pb2.Reference
    cache_hit: bool
    key: str
    # Phonetizer time spent on this lookup; 0 on a hit.
    build_ms: float


@dataclass(frozen=True)
class _Outcome:
    payload: bytes  # the serialized Reference: each caller parses its own copy
    cache_hit: bool
    build_ms: float


class ReferenceService:
    def __init__(
        self,
        store: ReferenceStore,
        *,
        ttl_s: int = 2_592_000,
        fallback: MemoryStore | None = None,
        build: BuildFn = builder.build_reference,
        build_threads: int = 2,
    ) -> None:
        self.store = store
        self.fallback = fallback
        self.ttl_s = ttl_s
        self._build = build
        self._executor = ThreadPoolExecutor(max_workers=build_threads, thread_name_prefix="reference-build")
        self._inflight: dict[str, asyncio.Future[_Outcome]] = {}

    @classmethod
    def from_config(cls, config: ReferenceCacheConfig, *, build: BuildFn = builder.build_reference) -> ReferenceService:
        lru = MemoryStore(config.lru_size)
        if not config.redis_url:
            return cls(lru, ttl_s=config.ttl_s, build=build, build_threads=config.build_threads)
        lru.name = "fallback"
        return cls(
            RedisStore.from_config(config),
            ttl_s=config.ttl_s,
            fallback=lru,
            build=build,
            build_threads=config.build_threads,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReferenceService:
        return cls.from_config(ReferenceCacheConfig.from_env(environ))

    @property
    def backend_name(self) -> str:
        """`redis` or `memory`."""
        return self.store.name

    def redis_client(self) -> redis_async.Redis | None:
        """The cache's Redis client (short timeouts, no retries), for other fail-open users."""
        return self.store.client if isinstance(self.store, RedisStore) else None

    async def get(
        self,
        target: common_pb2.Target | None,
        moshaf: common_pb2.MoshafAttributes | None,
        model_version: str,
    ) -> ReferenceResult:
        spec = targets.target_from_proto(target if target is not None else common_pb2.Target())
        values = moshaf_mod.to_dict(moshaf)
        key = cache_key(model_version, spec, values)
        flight = self._inflight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._lookup(key, spec, values))
            self._inflight[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        else:
            metrics.COALESCED.inc()
        # Shielded: a caller that gives up must not cancel the flight the others wait on.
        outcome = await asyncio.shield(flight)
        return ReferenceResult(
            reference=common_pb2.Reference.FromString(outcome.payload),
            cache_hit=outcome.cache_hit,
            key=key,
            build_ms=outcome.build_ms,
        )

    async def close(self) -> None:
        await self.store.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _landed(self, key: str, flight: asyncio.Future[_Outcome]) -> None:
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        if not flight.cancelled():
            flight.exception()  # retrieved here so that a flight nobody awaits any more logs nothing

    async def _lookup(self, key: str, spec: TargetSpec, values: dict[str, Any]) -> _Outcome:
        store: ReferenceStore | None = self.store
        try:
            raw = await self.store.get(key)
        except StoreUnavailable as exc:
            log.debug("reference cache read failed open: %s", exc)
            # Not retried for the write either: one failed Redis call per lookup at most.
            store = self.fallback
            raw = await store.get(key) if store is not None else None
        store_name = store.name if store is not None else "none"

        if raw is not None:
            payload = self._readable(raw, key, spec, values, store_name)
            if payload is not None:
                metrics.LOOKUPS.labels(store_name, "hit").inc()
                return _Outcome(payload, cache_hit=True, build_ms=0.0)
        metrics.LOOKUPS.labels(store_name, "miss").inc()

        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        reference = await loop.run_in_executor(self._executor, self._build, spec, values)
        build_s = time.perf_counter() - started
        metrics.BUILD_SECONDS.observe(build_s)

        payload = reference.SerializeToString()
        if store is not None:
            value = encode_value(payload)
            try:
                await store.set(key, value, self.ttl_s)
            except StoreUnavailable as exc:
                log.debug("reference cache write failed open: %s", exc)
                if self.fallback is not None:
                    await self.fallback.set(key, value, self.ttl_s)
        return _Outcome(payload, cache_hit=False, build_ms=build_s * 1000)

    @staticmethod
    def _readable(
        raw: bytes, key: str, spec: TargetSpec, values: dict[str, Any], store: str
    ) -> bytes | None:
        """The stored reference, serialized, or None when it must be recomputed (and overwritten)."""
        try:
            payload = decode_payload(raw)
            reference = parse_payload(payload)
            if reference.phonetizer_version != quran.phonetizer_version():
                raise InvalidValue(
                    f"built by quran-transcript {reference.phonetizer_version}, this is {quran.phonetizer_version()}"
                )
            if reference.target != spec.to_proto() or reference.moshaf != moshaf_mod.to_proto(values):
                raise InvalidValue("stored for another target or reading")
        except InvalidValue as exc:
            metrics.ERRORS.labels(store, "get", "invalid_value").inc()
            log.warning("cached reference %s recomputed: %s", key, exc)
            return None
        return payload
