"""The HTTP front end's one error path and its parsing, shared with the CLI: the real FastAPI
app over ASGI, a real GatewayApp, stand-in stages."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Mapping

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
    assert surah.status_code == 400
    assert _error(surah)["message"] == "surah must be an integer in 1..114, got 'al-anfal'"


async def test_reference_query_takes_typed_moshaf_attributes(client: httpx.AsyncClient) -> None:
    ok = await client.get("/v1/reference/1/1?madd_monfasel_len=4&rewaya=hafs", headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert ok.json()["reference"]["phonemes"]
    not_int = await client.get("/v1/reference/1/1?madd_monfasel_len=long", headers=AUTH)
    assert not_int.status_code == 400
    assert _error(not_int)["message"] == "madd_monfasel_len must be an integer in -2147483648..2147483647, got 'long'"
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


# The partner contract under misuse (issue 26): every case a partner tripped over is a 400 that
# names the field and, for a number, its valid range; none is a 500.


async def _form(client: httpx.AsyncClient, audio: bytes, fields: Mapping[str, str | list[str]]) -> tuple[int, str]:
    reply = await client.post(
        "/v1/assess", data=fields, files={"audio": ("recitation.wav", audio, "audio/wav")}, headers=AUTH
    )
    return reply.status_code, _error(reply)["message"] if reply.status_code != 200 else ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"surah": "8", "ayah": "75", "colour": "red"},
            "unknown form field 'colour' (the form takes audio, request, surah, ayah, words, last_ayah, locate)",
        ),
        ({"surah": "8", "ayah": "75", "word": "17:9"}, "unknown form field 'word'"),
        ({"surah": ["8", "9"], "ayah": "1"}, "form field 'surah' is sent 2 times; send it once"),
        ({"surah": "8"}, "the form gives surah without ayah"),
        ({"ayah": "75", "words": "17:9"}, "without surah"),
    ],
    ids=["unknown field", "typo of words", "field sent twice", "surah without ayah", "words without surah"],
)
async def test_the_form_refuses_what_it_does_not_take(
    client: httpx.AsyncClient, test_wav_bytes: bytes, fields: dict[str, str | list[str]], message: str
) -> None:
    status, got = await _form(client, test_wav_bytes, fields)
    assert status == 400 and message in got, got
    if "word'" in message:
        assert "did you mean 'words'?" in got


BIG = "99999999999999999999"
OUT_OF_RANGE = [
    ({"surah": BIG, "ayah": "1"}, f"surah must be an integer in 1..114, got '{BIG}'"),
    ({"surah": "2147483648", "ayah": "1"}, "surah must be an integer in 1..114, got '2147483648'"),
    ({"surah": "-1", "ayah": "1"}, "surah must be an integer in 1..114, got '-1'"),
    ({"surah": "8", "ayah": "1" + "0" * 30}, "ayah must be an integer in 1..75 (surah 8 has 75 ayahs), got '1000"),
    ({"surah": "8", "ayah": "-1"}, "ayah must be an integer in 1..75 (surah 8 has 75 ayahs), got '-1'"),
    (
        {"surah": "8", "ayah": "75", "words": f"{BIG}:1"},
        f"words must be FROM:COUNT with FROM in 0..128 and COUNT in 1..6500, got '{BIG}:1'",
    ),
    (
        {"surah": "2", "ayah": "1", "last_ayah": BIG},
        f"last_ayah must be an integer in 1..286 (surah 2 has 286 ayahs), got '{BIG}'",
    ),
    ({"surah": "1" * 5000, "ayah": "1"}, "surah must be an integer in 1..114, got '111"),
]


@pytest.mark.parametrize(("fields", "message"), OUT_OF_RANGE, ids=[m.split(",")[0] for _, m in OUT_OF_RANGE])
async def test_form_numbers_out_of_range_are_400_with_the_range(
    client: httpx.AsyncClient, test_wav_bytes: bytes, fields: dict[str, str], message: str
) -> None:
    status, got = await _form(client, test_wav_bytes, fields)
    assert status == 400 and got.startswith(message), got
    assert len(got) < 300  # a huge value is cut short in the answer


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"/v1/reference/{BIG}/1", f"surah must be an integer in 1..114, got '{BIG}'"),
        ("/v1/reference/1/-1", "ayah must be an integer in 1..7 (surah 1 has 7 ayahs), got '-1'"),
        ("/v1/reference/1/2147483648", "ayah must be an integer in 1..7 (surah 1 has 7 ayahs), got '2147483648'"),
        (
            f"/v1/reference/1/1?madd_monfasel_len={BIG}",
            "madd_monfasel_len must be an integer in -2147483648..2147483647",
        ),
        ("/v1/reference/1/1?rewaya=hafs&rewaya=warsh", "query parameter rewaya is given 2 times; give it once"),
    ],
)
async def test_the_reference_path_and_query_are_checked(client: httpx.AsyncClient, path: str, message: str) -> None:
    reply = await client.get(path, headers=AUTH)
    assert reply.status_code == 400 and _error(reply)["message"].startswith(message), reply.text


def _json_request(**target: int | str) -> dict[str, object]:
    return {"audio": {"content": "AAAA"}, "target": {"ayah": target}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            json.dumps(_json_request(surah=2**31, ayah=1)),
            "target.ayah.surah must be an integer in 1..114, got 2147483648",
        ),
        (json.dumps(_json_request(surah=-1, ayah=1)), "target.ayah.surah must be an integer in 1..114, got -1"),
        (json.dumps(_json_request(surah=1, ayah=10**30)), "target.ayah.ayah must be an integer in 1..7 (surah 1 has"),
        (
            json.dumps({"target": {"words": {"surah": 8, "ayah": 75, "startWord": 10**20, "wordCount": 1}}}),
            "target.words.startWord must be an integer in 0..128",
        ),
        (
            json.dumps({"target": {"ayahRange": {"surah": 2, "firstAyah": 1, "lastAyah": 10**20}}}),
            "target.ayahRange.lastAyah must be an integer in 1..286 (surah 2 has 286 ayahs)",
        ),
        (
            '{"target": {"ayah": {"surah": 1, "ayah": 1}}, "target": {"ayah": {"surah": 2, "ayah": 1}}}',
            "'target' is given twice",
        ),
        (
            json.dumps({"target": {"ayahRange": {"surah": 2, "firstAyah": 1, "lastAyah": 2, "last_ayah": 3}}}),
            "field 'lastAyah' is given twice in target.ayahRange (as 'lastAyah' and 'last_ayah')",
        ),
        (json.dumps({"colour": "red"}), "unknown field 'colour' (AssessRequest has audio, target"),
        (
            json.dumps({"target": "1:1"}),
            "target must be a JSON object (a Target with the fields ayah, words, ayahRange, locate)",
        ),
        ("[" * 100_000, "nested too deeply"),
        ("1" * 5000, "the body is not JSON this server reads"),
    ],
    ids=[
        "surah 2^31",
        "surah -1",
        "ayah 10^30",
        "startWord 10^20",
        "lastAyah 10^20",
        "key twice",
        "field under both names",
        "unknown field",
        "string for an object",
        "deep nesting",
        "5000 digits",
    ],
)
async def test_json_bodies_are_read_strictly(client: httpx.AsyncClient, body: str, message: str) -> None:
    reply = await client.post("/v1/assess", content=body, headers={**AUTH, "content-type": "application/json"})
    assert reply.status_code == 400 and message in _error(reply)["message"], reply.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_wrong_content_type_names_the_accepted_ones(client: httpx.AsyncClient, content_type: str) -> None:
    reply = await client.post("/v1/assess", content=b"surah=8&ayah=75", headers={**AUTH, "content-type": content_type})
    assert reply.status_code == 415
    error = _error(reply)
    assert error["code"] == "INVALID_ARGUMENT"
    assert content_type in error["message"]
    assert "multipart/form-data" in error["message"] and "application/json" in error["message"]
    assert "not JSON" not in error["message"]


async def test_the_form_target_and_the_request_part_do_not_override_each_other(
    client: httpx.AsyncClient, test_wav_bytes: bytes
) -> None:
    request = json.dumps({"target": {"ayah": {"surah": 1, "ayah": 1}}})
    status, got = await _form(client, test_wav_bytes, {"request": request, "surah": "8", "ayah": "75"})
    assert status == 400 and "the target is given twice" in got
    status, got = await _form(client, test_wav_bytes, {"request": json.dumps({"audio": {"content": "AAAA"}})})
    assert status == 400 and "audio goes in the `audio` file part" in got
    ok = await client.post(
        "/v1/assess",
        data={"request": request},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")},
        headers=AUTH,
    )
    assert ok.status_code == 200 and ok.json()["assessment"]["target"] == {"ayah": {"surah": 1, "ayah": 1}}
    as_file = await client.post(
        "/v1/assess",
        data={"surah": "1", "ayah": "1"},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav"), "surah": ("s.txt", b"1", "text/plain")},
        headers=AUTH,
    )
    assert as_file.status_code == 400


async def test_an_html_form_with_its_empty_optional_inputs_is_still_accepted(
    client: httpx.AsyncClient, test_wav_bytes: bytes
) -> None:
    status, got = await _form(client, test_wav_bytes, {"surah": "1", "ayah": "2", "words": "", "last_ayah": " "})
    assert status == 200, got


async def test_the_page_has_a_favicon(client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    page = await client.get("/live")
    assert '<link rel="icon" href="/favicon.ico"' in page.text


async def test_metrics_count_routes_not_the_paths_callers_make_up(client: httpx.AsyncClient) -> None:
    from prometheus_client import REGISTRY

    for path in ("/v1/made-up-1", "/v1/made-up-2", "/v1/reference/1/1", "/v1/reference/2/2"):
        await client.get(path, headers=AUTH)
    routes = {
        sample.labels["route"]
        for metric in REGISTRY.collect()
        if metric.name == "muaalem_http_requests"
        for sample in metric.samples
    }
    assert "unmatched" in routes and "/v1/reference/{surah}/{ayah}" in routes
    assert not any("made-up" in route for route in routes), routes


@pytest.fixture
async def limited() -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "MUAALEM_API_KEYS": f"tester:{hash_key(KEY)}",
        "MUAALEM_RATE_LIMIT_RPS": "0.5",
        "MUAALEM_RATE_LIMIT_BURST": "1",
    }
    stages = StandInStages(errors={"asr": Unavailable("asr is a stand-in that is down")})
    app = GatewayApp.build(GatewayConfig.from_env(env), stages=stages, environ=env)
    transport = httpx.ASGITransport(app=create_http_app(app), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http
    await app.close()


async def test_every_429_and_503_says_when_to_retry(limited: httpx.AsyncClient, test_wav_bytes: bytes) -> None:
    files = {"audio": ("recitation.wav", test_wav_bytes, "audio/wav")}
    first = await limited.post("/v1/assess", data={"surah": "1", "ayah": "2"}, files=files, headers=AUTH)
    assert first.status_code == 200, first.text
    refused = await limited.post("/v1/assess", data={"surah": "1", "ayah": "2"}, files=files, headers=AUTH)
    assert refused.status_code == 429 and _error(refused)["code"] == "RESOURCE_EXHAUSTED"
    # An empty bucket refills one token in 1 / 0.5 = 2 s: whole seconds, rounded up.
    assert refused.headers["retry-after"] == "2"
    again = await limited.post("/v1/assess", data={"surah": "1", "ayah": "2"}, files=files, headers=AUTH)
    assert again.status_code == 429 and int(again.headers["retry-after"]) >= 4  # told a later moment


async def test_readiness_503_carries_retry_after(gateway: GatewayApp, client: httpx.AsyncClient) -> None:
    async def down(timeout: float | None) -> dict[str, str]:
        return {"asr": "NOT_SERVING", "alignment": "SERVING", "tajweed": "SERVING"}

    gateway.stages.health = down  # type: ignore[method-assign]
    reply = await client.get("/readyz")
    assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
