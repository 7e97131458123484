"""The report's footer says which backend and precision served, and why."""

from __future__ import annotations

from rich.console import Console

from services.client.report import render
from services.common.pb import common_pb2, gateway_pb2


def test_the_footer_names_backend_precision_and_the_reason() -> None:
    reason = "backend auto: openvino on cpu; auto: bfloat16, the CPU has native bfloat16 (avx512_bf16)"
    assessment = gateway_pb2.Assessment(
        model_version=common_pb2.ModelVersion(
            name="m", weights_digest="d", backend="openvino", precision="bfloat16", device="cpu",
            precision_reason=reason,
        )
    )
    console = Console(record=True, width=400)
    render(assessment, console)
    text = console.export_text()
    assert "openvino bfloat16 on cpu" in text and reason in text
