"""The HTTP front end's one error path and its parsing, shared with the CLI: the real FastAPI
app over ASGI, a real GatewayApp, stand-in stages."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.client import options as cli
from services.common import parsing
from services.common.errors import InvalidArgument, Unavailable
from services.gateway.app import GatewayApp
from services.gateway.auth import hash_key
from services.gateway.config import GatewayConfig
from services.gateway.http import create_http_app
from tests.gateway.standin import StandInStages

KEY = "mua_test-key-for-http"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayApp]:
    env = {"MUAALEM_API_KEYS": f"tester:{hash_key(KEY)}", "MUAALEM_RATE_LIMIT_RPS": "0"}
    # The asr stand-in is down: assessments come back degraded, which is all the parsing needs.
    stages = StandInStages(errors={"asr": Unavailable("asr is a stand-in that is down")})
    app = GatewayApp.build(GatewayConfig.from_env(env), stages=stages, environ=env)
    yield app
    await app.close()


@pytest.fixture
async def client(gateway: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions off: a bug must come back as the API's 500, as a real client sees it.
    transport = httpx.ASGITransport(app=create_http_app(gateway), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def _error(reply: httpx.Response) -> dict[str, str]:
    body = reply.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "requestId"}, body
    assert body["error"]["requestId"] == reply.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"--x\r\nbroken multipart", "multipart/form-data; boundary=x"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer mua_wrong", "Basic dXNlcjpwYXNz"])
async def test_the_key_is_checked_before_the_body_is_parsed(
    client: httpx.AsyncClient, body: bytes, content_type: str, authorization: str | None
) -> None:
    headers = {"content-type": content_type}
    if authorization is not None:
        headers["authorization"] = authorization
    reply = await client.post("/v1/assess", content=body, headers=headers)
    assert reply.status_code == 401
    assert _error(reply)["code"] == "UNAUTHENTICATED"


async def test_with_the_key_a_malformed_body_is_invalid_argument(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v1/assess", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert reply.status_code == 400
    error = _error(reply)
    assert error["code"] == "INVALID_ARGUMENT" and "not JSON" in error["message"]


async def test_framework_errors_take_the_same_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here", headers=AUTH)
    assert missing.status_code == 404 and _error(missing)["code"] == "NOT_FOUND"
    wrong_method = await client.get("/v1/assess", headers=AUTH)
    assert wrong_method.status_code == 405 and _error(wrong_method)["code"] == "UNIMPLEMENTED"
    broken = await client.post(
        "/v1/assess", content=b"--x\r\nbroken", headers={**AUTH, "content-type": "multipart/form-data; boundary=x"}
    )
    assert broken.status_code == 400 and _error(broken)["code"] == "INVALID_ARGUMENT"


async def test_a_bug_is_an_internal_error_in_the_same_shape(
    client: httpx.AsyncClient, gateway: GatewayApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(authorization: str | None) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(gateway, "get_server_info", broken)
    reply = await client.get("/v1/info", headers=AUTH)
    assert reply.status_code == 500
    error = _error(reply)
    assert error["code"] == "INTERNAL" and "secret" not in error["message"]


@pytest.mark.parametrize("words", ["17:9", "17+9", " 17 : 9 "])
async def test_a_multipart_word_range_is_parsed_like_the_cli(
    client: httpx.AsyncClient, test_wav_bytes: bytes, words: str
) -> None:
    assert cli.parse_words(words) == parsing.parse_words(words) == (17, 9)
    reply = await client.post(
        "/v1/assess",
        data={"surah": "8", "ayah": "75", "words": words},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")},
        headers=AUTH,
    )
    assert reply.status_code == 200, reply.text
    assessment = reply.json()["assessment"]
    assert assessment["target"] == {"words": {"surah": 8, "ayah": 75, "startWord": 17, "wordCount": 9}}
    assert assessment["degraded"] == ["asr"]


async def test_bad_fields_get_one_message_in_both_front_ends(client: httpx.AsyncClient, test_wav_bytes: bytes) -> None:
    reply = await client.post(
        "/v1/assess",
        data={"surah": "8", "ayah": "75", "words": "seventeen"},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")},
        headers=AUTH,
    )
    assert reply.status_code == 400
    message = _error(reply)["message"]
    with pytest.raises(argparse.ArgumentTypeError) as from_cli:
        cli.parse_words("seventeen")
    assert message == str(from_cli.value) and "FROM:COUNT" in message
    surah = await client.post(
        "/v1/assess",
        data={"surah": "al-anfal", "ayah": "75"},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")},
        headers=AUTH,
    )
    assert surah.status_code == 400 and _error(surah)["message"] == "surah must be an integer, got 'al-anfal'"


async def test_reference_query_takes_typed_moshaf_attributes(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/reference/1/1?madd_monfasel_len=4&rewaya=hafs", headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert ok.json()["reference"]["phonemes"]
    not_int = await client.get("/v1/reference/1/1?madd_monfasel_len=long", headers=AUTH)
    assert not_int.status_code == 400
    assert _error(not_int)["message"] == "madd_monfasel_len must be an integer, got 'long'"
    unknown = await client.get("/v1/reference/1/1?speed=fast", headers=AUTH)
    assert unknown.status_code == 400 and "unknown query parameters: speed" in _error(unknown)["message"]
    no_key = await client.get("/v1/reference/one/1")
    assert no_key.status_code == 401


def test_the_parsing_module_is_the_one_grammar() -> None:
    assert parsing.parse_words("0+1") == (0, 1)
    for bad in ("17", "17:", ":9", "a:b", "17-9", "١٧:٩"):
        with pytest.raises(InvalidArgument, match="FROM:COUNT"):
            parsing.parse_words(bad)
    target = parsing.target_from_strings("2", "1", last_ayah="5")
    assert target.WhichOneof("kind") == "ayah_range" and target.ayah_range.last_ayah == 5
    with pytest.raises(InvalidArgument, match="not both"):
        parsing.target_from_strings("2", "1", words="0:2", last_ayah="5")
    pairs = parsing.name_value_pairs(["madd_monfasel_len=2", "rewaya=hafs"])
    moshaf = parsing.moshaf_from_strings(pairs)
    assert moshaf is not None and moshaf.madd_monfasel_len == 2 and moshaf.rewaya == "hafs"
    with pytest.raises(InvalidArgument, match="unknown moshaf attributes: colour"):
        parsing.moshaf_values({"colour": "green"})
    assert json.loads(json.dumps(parsing.moshaf_values({"madd_alleen_len": "-2"}))) == {"madd_alleen_len": -2}
