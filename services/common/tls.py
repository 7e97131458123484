"""TLS and mutual TLS credentials from PEM files named in the environment."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.common.config import ConfigError
from services.common.settings import TlsFiles


def read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS {what} {path!r}: {exc.strerror}") from exc


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials | None:
    """TLS when a certificate and key are set; mTLS (client certificates required) when a CA
    is set too. None means plaintext."""
    if not (tls.cert or tls.key):
        if tls.ca:
            raise ConfigError("MUAALEM_TLS_CA is set but MUAALEM_TLS_CERT/MUAALEM_TLS_KEY are not")
        return None
    if not (tls.cert and tls.key):
        raise ConfigError("MUAALEM_TLS_CERT and MUAALEM_TLS_KEY must be set together")
    ca = read_pem(tls.ca, "CA bundle") if tls.ca else None
    return grpc.ssl_server_credentials(
        [(read_pem(tls.key, "key"), read_pem(tls.cert, "certificate"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def channel_credentials(tls: TlsFiles) -> grpc.ChannelCredentials | None:
    """Credentials for calling a stage: the CA verifies the server, and our own certificate
    (when set) answers a server that asks for one. None means plaintext."""
    if not tls.ca:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(tls.ca, "CA bundle"),
        private_key=read_pem(tls.key, "key") if tls.key else None,
        certificate_chain=read_pem(tls.cert, "certificate") if tls.cert else None,
    )
