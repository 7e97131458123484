"""`muaalem assess` against a real gateway on loopback: over TLS and mTLS (certificates made by
the test), and with the development key the launcher wrote when no key is given."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services import cli
from services.client import connection as client
from services.common.errors import Unavailable
from services.gateway.server import build
from services.launcher import dev_api_key
from tests.certs import CertSet, make_certs
from tests.conftest import AUDIO_DIR, loopback_env, serving
from tests.gateway.standin import StandInStages

TLS_VARIABLES = ("MUAALEM_TLS_CA", "MUAALEM_TLS_CERT", "MUAALEM_TLS_KEY", "MUAALEM_TLS_SERVER_NAME")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory with the launcher's dev key; no key or TLS in the environment."""
    for name in (*TLS_VARIABLES, "MUAALEM_API_KEY", "MUAALEM_GATEWAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MUAALEM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@contextlib.asynccontextmanager
async def gateway(keys_file: Path, **tls: str) -> AsyncIterator[str]:
    env = {**loopback_env("gateway"), "MUAALEM_GATEWAY_HTTP_PORT": "-1", "MUAALEM_API_KEYS_FILE": str(keys_file)}
    env.update(tls)
    # The asr stage is a stand-in that is down: the gateway answers with a degraded assessment.
    stages = StandInStages(errors={"asr": Unavailable("the stand-in asr is down")})
    server, _, _ = build(env, stages=stages)
    async with serving(server) as mesh:
        yield f"127.0.0.1:{mesh.port}"


async def assess(address: str, *options: str) -> int:
    argv = ["assess", str(AUDIO_DIR / "test.wav"), "--surah", "8", "--ayah", "75", "--words", "17:9"]
    argv += ["--json", "--timeout", "20", "--address", address, *options]
    # The CLI blocks on its call: it runs in a thread while this loop serves the gateway.
    return await asyncio.to_thread(cli.main, argv)


async def test_the_cli_talks_tls_and_mtls(
    certs: CertSet, cache_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, keys_file = dev_api_key(cache_dir)
    server_tls = {"MUAALEM_TLS_CERT": str(certs.server_cert), "MUAALEM_TLS_KEY": str(certs.server_key)}
    async with gateway(keys_file, **server_tls) as address:
        assert await assess(address, "--tls-ca", str(certs.ca), "--api-key", key) == 0
        assert json.loads(capsys.readouterr().out)["target"]["words"]["startWord"] == 17
        # The name in the certificate, not just the address, is checked.
        assert await assess(f"localhost:{address.rpartition(':')[2]}", "--tls-ca", str(certs.ca)) == 0
        capsys.readouterr()
        assert await assess(address, "--api-key", key) == 1, "a plaintext call reached a TLS gateway"
        assert "UNAVAILABLE" in capsys.readouterr().err
        assert await assess(address, "--tls-ca", str(certs.other_ca)) == 1, "a server signed by another CA"
        capsys.readouterr()

    mtls = {**server_tls, "MUAALEM_TLS_CA": str(certs.ca)}
    async with gateway(keys_file, **mtls) as address:
        # The variables instead of the options: the client certificate answers the gateway's request.
        monkeypatch.setenv("MUAALEM_TLS_CA", str(certs.ca))
        monkeypatch.setenv("MUAALEM_TLS_CERT", str(certs.client_cert))
        monkeypatch.setenv("MUAALEM_TLS_KEY", str(certs.client_key))
        assert await assess(address) == 0
        assert json.loads(capsys.readouterr().out)["degraded"] == ["asr"]
        monkeypatch.delenv("MUAALEM_TLS_CERT")
        monkeypatch.delenv("MUAALEM_TLS_KEY")
        assert await assess(address) == 1, "a client without a certificate passed mTLS"
        assert "UNAVAILABLE" in capsys.readouterr().err


async def test_on_loopback_the_cli_uses_the_launchers_dev_key(
    cache_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, keys_file = dev_api_key(cache_dir)
    async with gateway(keys_file) as address:
        assert await assess(address) == 0, capsys.readouterr().err
        capsys.readouterr()
        monkeypatch.setenv("MUAALEM_API_KEY", "mua_not-the-dev-key")
        assert await assess(address) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        monkeypatch.delenv("MUAALEM_API_KEY")
        monkeypatch.setenv("MUAALEM_CACHE_DIR", str(tmp_path / "elsewhere"))
        assert await assess(address) == 1, "no dev key written there, yet the call was let in"
        assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_the_dev_key_is_sent_to_loopback_addresses_only(cache_dir: Path) -> None:
    key, _ = dev_api_key(cache_dir)
    env = {"MUAALEM_CACHE_DIR": str(cache_dir)}
    for address in ("127.0.0.1:50051", "localhost:50051", "[::1]:50051", "dns:///localhost:50051", "127.0.0.2:1"):
        assert client.api_key("", address, env) == key, address
    for address in ("gateway.example:443", "10.0.0.5:50051", "[2001:db8::1]:50051", "dns:///gateway:50051"):
        assert client.api_key("", address, env) == "", address
    assert client.api_key("explicit", "127.0.0.1:1", env) == "explicit"
    assert client.api_key("", "127.0.0.1:1", {**env, "MUAALEM_API_KEY": "from-env"}) == "from-env"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--moshaf", "colour=green"], "unknown moshaf attributes: colour"),
        (
            ["--moshaf", "madd_monfasel_len=long"],
            "madd_monfasel_len must be an integer in -2147483648..2147483647, got 'long'",
        ),
        (["--surah", "99999999999999999999"], "surah must be an integer in 1..114, got 99999999999999999999"),
        (["--ayah", "0"], "ayah must be an integer in 1..286 (surah 2 has 286 ayahs), got 0"),
        (["--last-ayah", "-3"], "last_ayah must be an integer in 1..286 (surah 2 has 286 ayahs), got -3"),
        (["--words", "0:2", "--last-ayah", "3"], "give either words or last_ayah, not both"),
        (["--tls-cert", "client.pem"], "--tls-cert and --tls-key"),
        (["--tls-ca", "/nonexistent/ca.pem"], "cannot read the TLS CA bundle '/nonexistent/ca.pem'"),
    ],
)
def test_bad_options_are_refused_before_any_call(
    options: list[str], message: str, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["assess", str(AUDIO_DIR / "test.wav"), "--surah", "2", "--ayah", "1", "--address", "127.0.0.1:1"]
    assert cli.main([*argv, *options]) == 2
    assert message in capsys.readouterr().err
