"""Security: mTLS between the gateway and the stages (certificates of the mesh CA, of another CA,
none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.reliability import inputs
from tests.reliability.cluster import STAGES, Cluster, Service, client_channel, health
from tests.reliability.http_client import http_call
from tests.reliability.pki import Pki, client_tls
from tests.reliability.report import Report

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Cluster]:
    """Stages that require client certificates from the mesh CA; a gateway that presents its
    own (MUAALEM_STAGE_TLS_*) and serves its public port in plaintext."""
    certs = pki.certs
    mesh = Cluster(
        tmp_path_factory.mktemp("tls-mesh"),
        stage_env={
            "MUAALEM_TLS_CERT": str(certs.server_cert),
            "MUAALEM_TLS_KEY": str(certs.server_key),
            "MUAALEM_TLS_CA": str(certs.ca),
        },
        gateway_env={
            "MUAALEM_STAGE_TLS_CA": str(certs.ca),
            "MUAALEM_STAGE_TLS_CERT": str(certs.client_cert),
            "MUAALEM_STAGE_TLS_KEY": str(certs.client_key),
            "MUAALEM_RATE_LIMIT_RPS": "0",
        },
        stage_client_tls=client_tls(pki),
    )
    mesh.start()
    yield mesh
    mesh.stop()


def _assess(gateway: Service, cluster: Cluster, timeout: float = 60) -> gateway_pb2.Assessment:
    with client_channel(gateway.address) as channel:
        return (
            gateway_pb2_grpc.GatewayServiceStub(channel)
            .Assess(inputs.assess_request(), metadata=cluster.metadata(), timeout=timeout)
            .assessment
        )


def test_mtls_between_gateway_and_stages(tls_mesh: Cluster, pki: Pki, report: Report) -> None:
    rows = []
    assessment = _assess(tls_mesh.gateway, tls_mesh)
    stages = {s.stage: s.status for s in assessment.stages}
    rows.append(
        [
            "gateway (certificate from the mesh CA)",
            "all three",
            "assessed in full" if not assessment.degraded else str(list(assessment.degraded)),
        ]
    )
    assert not assessment.degraded, [(s.stage, s.message) for s in assessment.stages]
    assert all(stages[s] == common_pb2.STAGE_STATUS_OK for s in STAGES)

    clients = {
        "client with the mesh CA's certificate": client_tls(pki),
        "plaintext client": None,
        "TLS client without a certificate": client_tls(pki, cert=False),
        "client certificate from another CA": client_tls(pki, intruder=True),
    }
    for label, tls in clients.items():
        results = {stage: health(tls_mesh.stage(stage).address, tls, timeout_s=3) for stage in STAGES}
        outcome = ", ".join(f"{stage} {status}" for stage, status in results.items())
        rows.append([label, "each stage, grpc.health.v1 Check", outcome])
        expected = "SERVING" if label.startswith("client with the mesh") else "UNAVAILABLE"
        assert set(results.values()) == {expected}, (label, results)

    # Gateways that cannot prove themselves get no stage, and do not fall back to plaintext.
    for label, env in {
        "gateway trusting another CA": {"MUAALEM_STAGE_TLS_CA": str(pki.certs.other_ca)},
        "gateway without TLS settings": {
            "MUAALEM_STAGE_TLS_CA": "",
            "MUAALEM_STAGE_TLS_CERT": "",
            "MUAALEM_STAGE_TLS_KEY": "",
        },
        "gateway with a certificate from another CA": {
            "MUAALEM_STAGE_TLS_CERT": str(pki.intruder_cert),
            "MUAALEM_STAGE_TLS_KEY": str(pki.intruder_key),
        },
    }.items():
        gateway = tls_mesh.new_gateway("gateway-" + label.replace(" ", "-"), env=env)
        gateway.start()
        try:
            gateway.wait_serving(60)
            partial = _assess(gateway, tls_mesh, timeout=20)
            ready = http_call(gateway.http_port, "GET", "/readyz")
        finally:
            gateway.stop()
        stage_status = {s.stage: common_pb2.StageStatus.Name(s.status) for s in partial.stages}
        rows.append([label, "asr (then nothing else runs)", f"asr {stage_status['asr']}; /readyz {ready.status}"])
        assert partial.degraded == ["asr"], stage_status
        assert stage_status["asr"] == "STAGE_STATUS_UNAVAILABLE"
        assert ready.status == 503
    report.add(
        "security",
        "mTLS between the gateway and the stages (certificates made by the test with openssl)",
        ["client", "called", "outcome"],
        rows,
        note="Stages run with MUAALEM_TLS_CERT/KEY and MUAALEM_TLS_CA (client certificates required); the "
        "gateway presents its own with MUAALEM_STAGE_TLS_CERT/KEY/CA.",
    )
