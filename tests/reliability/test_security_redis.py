"""Security: Redis AUTH and TLS settings honoured, by the reference store and by a gateway process."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.common.config import ConfigError
from services.common.pb import gateway_pb2, gateway_pb2_grpc
from services.gateway.reference.cache import RedisStore, StoreUnavailable
from services.gateway.reference.service import ReferenceService
from services.gateway.reference.settings import ReferenceCacheConfig
from tests.certs import CertSet
from tests.conftest import free_port
from tests.reliability import inputs
from tests.reliability.cluster import Cluster, client_channel
from tests.reliability.pki import Pki
from tests.reliability.report import Report

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


class TlsRedis:
    """redis-server with TLS only (client certificates required) and a password."""

    def __init__(self, workdir: Path, certs: CertSet, password: str) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.port = free_port()
        self.password = password
        self.certs = certs
        self.process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--tls-port", str(self.port),
                "--bind", "127.0.0.1",
                "--tls-cert-file", str(certs.server_cert),
                "--tls-key-file", str(certs.server_key),
                "--tls-ca-cert-file", str(certs.ca),
                "--tls-auth-clients", "yes",
                "--requirepass", password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.client_cert),
            ssl_keyfile=str(self.certs.client_key),
            socket_timeout=2,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path_factory.mktemp("tls-redis"), pki.certs, password="s3cret-Pa55")
    yield server
    server.stop()


REDIS_TIMEOUT_MS = "1000"  # a TLS handshake on a busy 2-core machine can pass the 40 ms default


def _redis_env(server: TlsRedis, **overrides: str) -> dict[str, str]:
    certs = server.certs
    env = {
        "MUAALEM_REDIS_URL": f"rediss://127.0.0.1:{server.port}/0",
        "MUAALEM_REDIS_PASSWORD": server.password,
        "MUAALEM_REDIS_TLS_CA": str(certs.ca),
        "MUAALEM_REDIS_TLS_CERT": str(certs.client_cert),
        "MUAALEM_REDIS_TLS_KEY": str(certs.client_key),
        "MUAALEM_REDIS_TIMEOUT_MS": REDIS_TIMEOUT_MS,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "-"}


async def _store_outcome(env: dict[str, str]) -> str:
    """What one read of the cache store does with these settings: OK, or the failure."""
    service = ReferenceService.from_config(ReferenceCacheConfig.from_env(env))
    try:
        assert isinstance(service.store, RedisStore)
        await service.store.get("probe")
        return "OK"
    except StoreUnavailable as exc:
        return str(exc)
    finally:
        await service.close()


async def test_redis_auth_and_tls_settings_are_honoured(tls_redis: TlsRedis, report: Report) -> None:
    cases = {
        "rediss://, password, CA, client certificate": ({}, "OK"),
        "wrong password": ({"MUAALEM_REDIS_PASSWORD": "guess"}, "invalid username-password"),
        "no password": ({"MUAALEM_REDIS_PASSWORD": "-"}, "AuthenticationError"),
        "no client certificate": ({"MUAALEM_REDIS_TLS_CERT": "-", "MUAALEM_REDIS_TLS_KEY": "-"}, "ConnectionError"),
        "CA that did not sign the server": (
            {"MUAALEM_REDIS_TLS_CA": str(tls_redis.certs.other_ca)},
            "certificate verify failed",
        ),
    }
    rows = []
    for label, (overrides, expected) in cases.items():
        outcome = await _store_outcome(_redis_env(tls_redis, **overrides))
        rows.append([label, outcome[:140]])
        assert expected in outcome, (label, outcome)
        assert (outcome == "OK") == (expected == "OK"), (label, outcome)
    with pytest.raises(ConfigError, match="not rediss://"):
        ReferenceService.from_env(_redis_env(tls_redis, MUAALEM_REDIS_URL=f"redis://127.0.0.1:{tls_redis.port}/0"))
    rows.append(["TLS files with a redis:// URL", "refused at start-up (ConfigError: not rediss://)"])
    plain = await _store_outcome(
        {
            "MUAALEM_REDIS_URL": f"redis://:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0",
            "MUAALEM_REDIS_TIMEOUT_MS": REDIS_TIMEOUT_MS,
        }
    )
    rows.append(["plaintext client on the TLS port", plain[:140]])
    assert plain != "OK"
    report.add(
        "security",
        "Redis AUTH and TLS options (redis-server with --tls-port, --tls-auth-clients yes, --requirepass)",
        ["gateway cache settings", "a cache read"],
        rows,
    )


def test_gateway_process_uses_redis_over_tls_with_auth(cluster: Cluster, tls_redis: TlsRedis) -> None:
    """The whole path in a gateway process: references land in the TLS Redis, and come back."""
    gateway = cluster.new_gateway("gateway-tls-redis", env=_redis_env(tls_redis))
    gateway.start()
    try:
        gateway.wait_serving(60)
        request = gateway_pb2.GetReferenceRequest(target=inputs.target(1, 3, None))
        with client_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            info = stub.GetServerInfo(gateway_pb2.GetServerInfoRequest(), metadata=cluster.metadata(), timeout=10)
            first = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
            second = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
    finally:
        gateway.stop()
    assert info.cache_backend == "redis"
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert tls_redis.client().exists(first.cache_key) == 1
