"""The cache's parts without Redis: keys, the stored value format, the LRU, the breaker."""

from __future__ import annotations

import zlib

import pytest

from services.common.config import ConfigError
from services.common.pb import common_pb2
from services.gateway.reference import builder, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference.breaker import BreakerState, CircuitBreaker
from services.gateway.reference.cache import (
    FORMAT_VERSION,
    MAGIC,
    InvalidValue,
    MemoryStore,
    cache_key,
    connection_kwargs,
    decode_value,
    encode_value,
    model_namespace,
)
from services.gateway.reference.settings import ReferenceCacheConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_for_default_and_other_readings() -> None:
    defaults = moshaf_mod.default_values()
    target = targets.ayah_target(8, 75)
    assert cache_key("muaalem-model-v3_2@1a2b3c4d", target, defaults) == "muaalem-model-v3_2@1a2b3c4d:8:75"
    other = moshaf_mod.to_dict(common_pb2.MoshafAttributes(madd_monfasel_len=2))
    key = cache_key("v@1", target, other)
    assert key == f"v@1:8:75:m{moshaf_mod.digest(other)}"
    # Setting a field to its default value is the default reading: same key.
    assert cache_key("v@1", target, moshaf_mod.to_dict(common_pb2.MoshafAttributes(madd_monfasel_len=4))) == "v@1:8:75"
    words = targets.word_range_target(8, 75, 17, 9)
    assert cache_key("v@1", words, defaults) == "v@1:8:75:w17+9"


def test_keys_never_hold_hash_tags_or_spaces() -> None:
    key = cache_key("/models/my {best} model", targets.ayah_target(1, 1), moshaf_mod.default_values())
    assert "{" not in key and "}" not in key and " " not in key
    with pytest.raises(ValueError, match="model version"):
        cache_key("", targets.ayah_target(1, 1), moshaf_mod.default_values())


def test_model_namespace() -> None:
    model = common_pb2.ModelVersion(name="obadx/muaalem-model-v3_2", weights_digest="1a2b3c4d5e6f7a8b")
    assert model_namespace(model) == "muaalem-model-v3_2@1a2b3c4d"
    assert model_namespace(common_pb2.ModelVersion(name="/srv/ckpt/")) == "ckpt"


def test_values_round_trip_compressed() -> None:
    reference = builder.build_reference(targets.ayah_target(2, 282), moshaf_mod.default_values())
    payload = reference.SerializeToString()
    value = encode_value(payload)
    assert value.startswith(MAGIC + bytes([FORMAT_VERSION]))
    assert len(value) < len(payload) / 4
    assert decode_value(value) == reference


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "magic"),
        (b"\x80\x04pickle", "magic"),
        (MAGIC, "format None"),
        (MAGIC + b"\x09" + zlib.compress(b""), "format 9"),
        (MAGIC + b"\x01" + zlib.compress(b""), "format 1"),
        (MAGIC + b"\x02" + zlib.compress(b""), "format 2"),
        (MAGIC + bytes([FORMAT_VERSION]) + b"not zlib", "decompress"),
        (MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(b"\xff\xff\xff\xff")[:-3], "truncated"),
        (MAGIC + bytes([FORMAT_VERSION]) + zlib.compress(b"\xff\xff\xff\xff"), "parse"),
    ],
)
def test_unreadable_values_are_rejected(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        decode_value(raw)


async def test_memory_store_expires_like_a_ttl_and_evicts_the_least_recent() -> None:
    clock = FakeClock()
    store = MemoryStore(2, clock=clock)
    await store.set("a", b"1", ttl_s=10)
    await store.set("b", b"2", ttl_s=100)
    assert await store.get("a") == b"1"  # a is now the most recent
    await store.set("c", b"3", ttl_s=100)
    assert await store.get("b") is None  # evicted
    assert await store.get("a") == b"1"
    clock.now += 10
    assert await store.get("a") is None  # expired
    assert await store.get("c") == b"3"
    assert len(store) == 1


def test_breaker_opens_after_consecutive_failures_and_probes_after_the_cooldown() -> None:
    clock = FakeClock()
    states: list[BreakerState] = []
    breaker = CircuitBreaker("redis", 3, 5.0, clock=clock, on_change=states.append)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.record_failure()  # the probe failed: a full cooldown again
    assert breaker.state is BreakerState.OPEN
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert states == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_an_abandoned_probe_does_not_wedge_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("redis", 1, 2.0, clock=clock)
    breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()  # a probe whose caller is cancelled and never reports
    clock.now += 1.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        ReferenceCacheConfig.from_env({"MUAALEM_REDIS_URL": "127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="MUAALEM_REDIS_TIMEOUT_MS"):
        ReferenceCacheConfig.from_env({"MUAALEM_REDIS_TIMEOUT_MS": "0"})
    with pytest.raises(ConfigError, match="go together"):
        ReferenceCacheConfig.from_env({"MUAALEM_REDIS_TLS_CERT": "c.pem"})
    config = ReferenceCacheConfig.from_env({})
    assert (config.redis_url, config.ttl_s, config.timeout_s) == ("", 2_592_000, 0.04)


def test_connection_options_carry_auth_and_tls() -> None:
    config = ReferenceCacheConfig(redis_url="rediss://cache:6380/0", redis_password="pw", tls_ca="/ca.pem")
    kwargs = connection_kwargs(config, 0.04)
    assert kwargs["password"] == "pw" and kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["socket_connect_timeout"] == kwargs["socket_timeout"] == 0.04
    with pytest.raises(ConfigError, match="rediss://"):
        connection_kwargs(ReferenceCacheConfig(redis_url="redis://cache:6379/0", tls_ca="/ca.pem"), 0.04)
