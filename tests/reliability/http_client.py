"""A plain HTTP client for the gateway's partner API (http.client: exact bodies, chunked uploads)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        """The error message of an error body (`{"error": {"message"}}` or Starlette's `detail`)."""
        try:
            document = self.json()
        except ValueError:
            return self.body.decode(errors="replace")
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            return str(document["error"].get("message", ""))
        if isinstance(document, dict) and "detail" in document:
            return str(document["detail"])
        return self.body.decode(errors="replace")


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    *,
    content_type: str | None = "application/json",
    authorization: str | None = None,
    timeout_s: float = 60.0,
) -> HttpReply:
    """One request on its own connection; an iterable body is sent chunked (no Content-Length)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    headers = {"content-type": content_type} if body is not None and content_type else {}
    if authorization:
        headers["authorization"] = authorization
    try:
        chunked = body is not None and not isinstance(body, bytes)
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        answered = {name.lower(): value for name, value in response.getheaders()}
        return HttpReply(response.status, response.read(), answered)
    finally:
        connection.close()
