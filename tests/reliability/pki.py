"""The certificates of the security runs: the mesh CA's, and an intruder's signed by another CA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.common.settings import TlsFiles
from tests.certs import CertSet, _leaf, make_certs


@dataclass(frozen=True)
class Pki:
    certs: CertSet
    intruder_cert: Path  # a client certificate signed by another CA
    intruder_key: Path


def make_pki(directory: Path) -> Pki:
    certs = make_certs(directory)
    other_ca = (certs.other_ca, directory / "other-ca.key")
    cert, key = _leaf(directory, "intruder", other_ca, "DNS:gateway")
    return Pki(certs, cert, key)


def client_tls(pki: Pki, *, cert: bool = True, intruder: bool = False) -> TlsFiles:
    if intruder:
        return TlsFiles(cert=str(pki.intruder_cert), key=str(pki.intruder_key), ca=str(pki.certs.ca), server_name="")
    if not cert:
        return TlsFiles(cert="", key="", ca=str(pki.certs.ca), server_name="")
    return TlsFiles(
        cert=str(pki.certs.client_cert), key=str(pki.certs.client_key), ca=str(pki.certs.ca), server_name=""
    )


