"""The report says which weights answered: a red banner for random dev weights, a yellow one
for the demo checkpoint (it hears the project's synthetic reciter, not people), none for real."""

from __future__ import annotations

from rich.console import Console

from services.client.report import render
from services.common.pb import common_pb2, gateway_pb2


def _text(version: common_pb2.ModelVersion) -> str:
    console = Console(record=True, width=140)
    render(gateway_pb2.Assessment(model_version=version, uthmani="قُلْ"), console)
    return console.export_text()


def test_each_kind_of_weights_gets_its_banner() -> None:
    demo = _text(common_pb2.ModelVersion(name="services/asr/demo_model", demo_weights=True))
    assert "DEMO WEIGHTS" in demo and "synthetic reciter" in demo and "not people" in demo
    assert "DEVELOPMENT WEIGHTS" not in demo
    dev = _text(common_pb2.ModelVersion(name="dev", dev_weights=True))
    assert "DEVELOPMENT WEIGHTS" in dev and "DEMO WEIGHTS" not in dev
    real = _text(common_pb2.ModelVersion(name="obadx/muaalem-model-v3_2"))
    assert "DEMO WEIGHTS" not in real and "DEVELOPMENT WEIGHTS" not in real
