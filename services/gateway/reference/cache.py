"""Where references are kept: keys, the stored value format, and the two stores.

Key: ``{model_version}:{target key}`` for the default MoshafAttributes, with ``:m{digest}``
appended for any other reading, e.g. ``muaalem-model-v3_2@1a2b3c4d:8:75`` or
``muaalem-model-v3_2@1a2b3c4d:8:75:w17+9:m3f2a09c1d4e7``. Keys never contain braces: Redis
Cluster would read ``{...}`` as a hash tag and pile every reference onto one slot.

Value: ``MQR`` + one format-version byte + zlib(serialized ``common_pb2.Reference``), or in
format 2 zlib(serialized ``prosody_pb2.ReferenceEntry``: the reference with the reference
recitations' analyses, see recitation_entry.py), read here as its reference. A value
with another magic or version, or one that fails to decompress or parse, is rejected (and the
caller recomputes and overwrites it); never pickle, so a value written by anyone is only data.
zlib shrinks a reference about 6x (the sifat labels repeat) for ~0.1 ms either way.

Stores: :class:`RedisStore` (shared by every gateway replica; fails open through short
timeouts, no retries and a circuit breaker) and :class:`MemoryStore` (a bounded LRU with the
same TTL semantics: the cache when no Redis is configured, and the stand-in while Redis is
unreachable).
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import redis.asyncio as redis_async
from google.protobuf.message import DecodeError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.config import ConfigError
from services.common.pb import common_pb2
from services.gateway.reference import metrics
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference.breaker import BreakerState, CircuitBreaker
from services.gateway.reference.settings import ReferenceCacheConfig
from services.gateway.reference.targets import TargetSpec

T = TypeVar("T")

MAGIC = b"MQR"
# 3: a text reference alone; 4: a ReferenceEntry (the text reference with the analyses of its
# reference recitations, recitation_entry.py). Values of formats 1 and 2 carried the
# phonetizer's character spans as rule ranges (before reference/rule_spans.py) and are rebuilt,
# not served.
FORMAT_VERSION = 3
ENTRY_FORMAT_VERSION = 4
_HEADER = MAGIC + bytes([FORMAT_VERSION])
# The largest reference (an ayah range of 300 ayahs) serializes to a few MB; anything bigger
# is not a reference, and bounding it keeps a corrupt value from inflating without limit.
_MAX_DECODED_BYTES = 64 * 1024 * 1024
_FORBIDDEN_IN_KEY = re.compile(r"[{}\s]")


class InvalidValue(Exception):
    """A stored value that is not a reference this version can read."""


class StoreUnavailable(Exception):
    """The store could not answer (down, slow, or skipped by the open circuit)."""


def cache_key(model_version: str, target: TargetSpec, moshaf_values: dict[str, Any]) -> str:
    if not model_version:
        raise ValueError("a cache key needs a model version")
    # A local checkpoint path may hold anything; braces would make a Redis Cluster hash tag.
    key = f"{_FORBIDDEN_IN_KEY.sub('_', model_version)}:{target.key()}"
    if not moshaf_mod.is_default(moshaf_values):
        key += f":m{moshaf_mod.digest(moshaf_values)}"
    return key


def model_namespace(model: common_pb2.ModelVersion) -> str:
    """The model part of a key: the checkpoint's last path component and the first 8 hex
    digits of the weights digest, e.g. ``muaalem-model-v3_2@1a2b3c4d``."""
    name = model.name.rstrip("/").rsplit("/", 1)[-1] or "model"
    return f"{name}@{model.weights_digest[:8]}" if model.weights_digest else name


def encode_value(payload: bytes) -> bytes:
    """The stored form of a serialized `common_pb2.Reference`."""
    return _HEADER + zlib.compress(payload, 6)


def decode_payload(raw: bytes) -> bytes:
    """A stored value's serialized Reference, checked and decompressed (not yet parsed)."""
    if raw[: len(MAGIC)] != MAGIC:
        raise InvalidValue("not a reference value (magic bytes differ)")
    version = raw[len(MAGIC)] if len(raw) > len(MAGIC) else None
    if version not in (FORMAT_VERSION, ENTRY_FORMAT_VERSION):
        raise InvalidValue(f"reference value format {version} is not {FORMAT_VERSION} or {ENTRY_FORMAT_VERSION}")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(raw[len(_HEADER) :], _MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise InvalidValue(f"reference value does not decompress: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise InvalidValue("reference value is truncated or larger than any reference")
    if version == ENTRY_FORMAT_VERSION:
        from services.common.pb import prosody_pb2

        try:
            return prosody_pb2.ReferenceEntry.FromString(payload).reference.SerializeToString()
        except DecodeError as exc:
            raise InvalidValue(f"reference entry does not parse: {exc}") from exc
    return payload


def parse_payload(payload: bytes) -> common_pb2.Reference:
    try:
        return common_pb2.Reference.FromString(payload)
    except DecodeError as exc:
        raise InvalidValue(f"reference value does not parse: {exc}") from exc


def decode_value(raw: bytes) -> common_pb2.Reference:
    return parse_payload(decode_payload(raw))


class ReferenceStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """A bounded LRU whose entries expire like Redis keys with a TTL."""

    def __init__(self, max_entries: int, *, name: str = "memory", clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.name = name
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


def connection_kwargs(config: ReferenceCacheConfig, timeout_s: float) -> dict[str, Any]:
    """Options for redis-py's `from_url` (sync or asyncio): timeouts, AUTH and TLS files."""
    if not config.redis_url:
        raise ConfigError("no Redis URL: set MUAALEM_REDIS_URL or pass one")
    scheme = urlsplit(config.redis_url).scheme
    kwargs: dict[str, Any] = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
    # A password in the URL wins (redis-py lets URL options override keyword arguments).
    if config.redis_password:
        kwargs["password"] = config.redis_password
    tls_files = {"ssl_ca_certs": config.tls_ca, "ssl_certfile": config.tls_cert, "ssl_keyfile": config.tls_key}
    if any(tls_files.values()):
        if scheme != "rediss":
            raise ConfigError("Redis TLS files are set but the URL is not rediss://")
        kwargs.update({name: path for name, path in tls_files.items() if path})
    return kwargs


def create_client(config: ReferenceCacheConfig) -> redis_async.Redis:
    """The asyncio client of the request path: short timeouts and no retries at all (redis-py's
    default retry turns one call to a dead server into seconds of backoff)."""
    return redis_async.Redis.from_url(
        config.redis_url,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        **connection_kwargs(config, config.timeout_s),
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "connection"
    return "redis"


class RedisStore:
    """Redis behind a circuit breaker; every failure surfaces as StoreUnavailable."""

    name = "redis"

    def __init__(self, client: redis_async.Redis, breaker: CircuitBreaker, timeout_s: float) -> None:
        self.client = client
        self.breaker = breaker
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, config: ReferenceCacheConfig) -> RedisStore:
        breaker = CircuitBreaker(
            "redis reference cache",
            config.breaker_failures,
            config.breaker_cooldown_s,
            on_change=lambda state: metrics.BREAKER_STATE.set(int(state)),
        )
        metrics.BREAKER_STATE.set(int(BreakerState.CLOSED))
        return cls(create_client(config), breaker, config.timeout_s)

    async def get(self, key: str) -> bytes | None:
        # The client is built without decode_responses: values come back as bytes.
        return cast("bytes | None", await self._call("get", lambda: self.client.get(key)))

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._call("set", lambda: self.client.set(key, value, ex=ttl_s))

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            metrics.ERRORS.labels(self.name, op, "circuit_open").inc()
            raise StoreUnavailable("Redis skipped: the circuit is open")
        started = time.perf_counter()
        try:
            # The socket timeouts bound connect and read separately; this bounds their sum.
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self.breaker.record_failure()
            metrics.ERRORS.labels(self.name, op, _reason(exc)).inc()
            raise StoreUnavailable(f"Redis {op} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            metrics.REDIS_CALL_SECONDS.labels(op).observe(time.perf_counter() - started)
        self.breaker.record_success()
        return result
