"""Locate targets over HTTP: the form's locate=true and the JSON's target {"locate": {}} ask the
gateway to find the passage (with the asr stand-in down, it says locating needs the decode: proof
that the request was read as a locate); a form that names a passage and asks to locate is refused.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.gateway.test_http import AUTH, _error, client, gateway  # noqa: F401  (fixtures)

NEEDS_DECODE = "locating needs the asr stage's decode"


async def test_a_form_with_locate_true_locates(client: httpx.AsyncClient, test_wav_bytes: bytes) -> None:  # noqa: F811
    reply = await client.post(
        "/v1/assess",
        data={"locate": "true"},
        files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")},
        headers=AUTH,
    )
    assert reply.status_code == 503 and NEEDS_DECODE in _error(reply)["message"]


async def test_json_with_a_locate_target_locates(client: httpx.AsyncClient, test_wav_bytes: bytes) -> None:  # noqa: F811
    body = {"audio": {"content": base64.b64encode(test_wav_bytes).decode()}, "target": {"locate": {}}}
    reply = await client.post("/v1/assess", json=body, headers=AUTH)
    assert reply.status_code == 503 and NEEDS_DECODE in _error(reply)["message"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"locate": "true", "surah": "112", "ayah": "1"}, "not both"),
        ({"locate": "perhaps"}, "expected true or false"),
        ({}, "target.locate"),
    ],
)
async def test_a_contradictory_or_missing_target_is_refused(
    client: httpx.AsyncClient,  # noqa: F811
    test_wav_bytes: bytes,
    fields: dict[str, str],
    message: str,
) -> None:
    reply = await client.post(
        "/v1/assess", data=fields, files={"audio": ("recitation.wav", test_wav_bytes, "audio/wav")}, headers=AUTH
    )
    assert reply.status_code == 400 and message in _error(reply)["message"], reply.text


def test_the_openapi_document_says_how_to_locate() -> None:
    from services.gateway import openapi

    document = openapi.build()
    post = document["paths"]["/v1/assess"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert form["locate"]["type"] == "boolean"
    assert "locate" in post["description"]
    assert "locate" in document["components"]["schemas"]["Target"]["properties"]
    assert "Located" in document["components"]["schemas"]
