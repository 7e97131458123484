"""How the command line reaches a gateway: the channel (plaintext, TLS or mTLS) and the API key.

TLS comes from --tls-ca/--tls-cert/--tls-key or MUAALEM_TLS_CA/_CERT/_KEY (the variables a mesh
client already uses to verify servers). With no key given, a gateway on loopback is called
with the development key that `make serve` (services.launcher) wrote, so `make serve` then
`muaalem assess` works without copying a key around.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from services.common.settings import TlsFiles, dev_key_path, tls_from_env
from services.common.tls import read_pem

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def host_of(address: str) -> str:
    """The host of `host:port`, `[v6]:port`, `dns:///host:port` or `ipv4:host:port`."""
    rest = address.split("///", 1)[-1]
    for scheme in ("ipv4:", "ipv6:", "dns:"):
        rest = rest.removeprefix(scheme)
    if rest.startswith("["):
        return rest[1:].partition("]")[0]
    host, sep, port = rest.rpartition(":")
    return host if sep and port.isdigit() else rest


def is_loopback(address: str) -> bool:
    host = host_of(address).lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(explicit: str, address: str, environ: Mapping[str, str]) -> str:
    """The key to send: --api-key, else MUAALEM_API_KEY, else (on loopback only) the dev key."""
    if explicit:
        return explicit
    if environ.get("MUAALEM_API_KEY"):
        return environ["MUAALEM_API_KEY"]
    if is_loopback(address):
        try:
            return dev_key_path(environ).read_text().strip()
        except OSError:
            return ""
    return ""


@dataclass(frozen=True)
class ClientTls:
    """The CLI's TLS: on when any file is named or `enabled` (then the system's roots verify)."""

    files: TlsFiles
    enabled: bool = False

    @classmethod
    def resolve(
        cls,
        *,
        ca: str = "",
        cert: str = "",
        key: str = "",
        server_name: str = "",
        enabled: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> ClientTls:
        env = tls_from_env(os.environ if environ is None else environ)
        files = TlsFiles(
            cert=cert or env.cert, key=key or env.key, ca=ca or env.ca, server_name=server_name or env.server_name
        )
        return cls(files=files, enabled=enabled or bool(files.ca or files.cert or files.key))

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.enabled:
            return None
        files = self.files
        if bool(files.cert) != bool(files.key):
            raise ValueError("--tls-cert and --tls-key (MUAALEM_TLS_CERT/_KEY) go together: give both or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(files.ca, "CA bundle") if files.ca else None,
            private_key=read_pem(files.key, "key") if files.key else None,
            certificate_chain=read_pem(files.cert, "certificate") if files.cert else None,
        )


def open_channel(address: str, tls: ClientTls, *, max_send_bytes: int = 64 << 20) -> grpc.Channel:
    """A blocking channel to the gateway, secure when TLS is on."""
    options: list[tuple[str, Any]] = [("grpc.max_send_message_length", max_send_bytes)]
    credentials = tls.credentials()
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    if tls.files.server_name:
        options.append(("grpc.ssl_target_name_override", tls.files.server_name))
    return grpc.secure_channel(address, credentials, options=options)
