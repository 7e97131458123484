"""TLS and mTLS between a client and a real server process, with certificates made by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.common.channels import create_channel
from services.common.pb import tajweed_pb2, tajweed_pb2_grpc
from services.common.settings import TlsFiles
from tests.certs import CertSet, make_certs
from tests.common.test_server_runtime import ServerProcess


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def mtls_server(tmp_path: Path, certs: CertSet) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "server.log",
        MUAALEM_TLS_CERT=str(certs.server_cert),
        MUAALEM_TLS_KEY=str(certs.server_key),
        MUAALEM_TLS_CA=str(certs.ca),
        MUAALEM_SHUTDOWN_DELAY_S="0",
    )
    yield server
    server.close()


async def _call(channel: grpc.aio.Channel) -> tajweed_pb2.ValidateResponse:
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    return await stub.Validate(tajweed_pb2.ValidateRequest(), timeout=5, wait_for_ready=True)


async def test_client_with_a_certificate_from_the_mesh_ca_is_served(mtls_server: ServerProcess, certs: CertSet) -> None:
    tls = TlsFiles(cert=str(certs.client_cert), key=str(certs.client_key), ca=str(certs.ca), server_name="")
    channel = create_channel(mtls_server.address, ["muaalem.v1.TajweedService"], tls=tls)
    assert isinstance(await _call(channel), tajweed_pb2.ValidateResponse)
    await channel.close()


async def test_client_without_a_certificate_is_refused(mtls_server: ServerProcess, certs: CertSet) -> None:
    tls = TlsFiles(cert="", key="", ca=str(certs.ca), server_name="")
    channel = create_channel(mtls_server.address, ["muaalem.v1.TajweedService"], tls=tls)
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Validate(tajweed_pb2.ValidateRequest(), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    await channel.close()


async def test_plaintext_client_is_refused(mtls_server: ServerProcess) -> None:
    channel = grpc.aio.insecure_channel(mtls_server.address)
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Validate(tajweed_pb2.ValidateRequest(), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    await channel.close()


async def test_server_signed_by_another_ca_is_not_trusted(mtls_server: ServerProcess, certs: CertSet) -> None:
    tls = TlsFiles(cert=str(certs.client_cert), key=str(certs.client_key), ca=str(certs.other_ca), server_name="")
    channel = create_channel(mtls_server.address, ["muaalem.v1.TajweedService"], tls=tls)
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Validate(tajweed_pb2.ValidateRequest(), timeout=3)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    await channel.close()
