"""The names the exported encoder graph's inputs carry: what the exporter writes, and what the
calibration reader and the ONNX Runtime and OpenVINO runners feed. A module of its own so that
the calibration (which the exporter calls) does not import the exporter back."""

from __future__ import annotations

INPUT_NAMES = ("features", "attention_mask", "input_frames")
