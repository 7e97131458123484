"""`muaalem dev-model` and `muaalem export-onnx`: torch is imported inside the handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser(
        "dev-model",
        help="write a random-weight checkpoint in the real format (for tests and benchmarks)",
        description=(
            "Writes a multi_level_ctc checkpoint (or, with --segmenter, a recitation-segmenter-v2 "
            "style frame classifier) with random weights: config.json (marked as a dev "
            "checkpoint), model.safetensors, vocab.json, preprocessor_config.json."
        ),
    )
    dev.add_argument("directory", help="output directory (created if missing)")
    dev.add_argument("--size", choices=("tiny", "full"), default="tiny",
                     help="tiny: a few small layers (tests); full: w2v-bert-2.0 shape, ~606 M parameters")
    dev.add_argument("--segmenter", action="store_true", help="write a frame classifier instead")
    dev.add_argument("--seed", type=int, default=0, help="weights are a function of the seed")
    dev.set_defaults(handler=_dev_model)

    export = subparsers.add_parser(
        "export-onnx",
        help="export a multi_level_ctc checkpoint to ONNX (for MUAALEM_ASR_BACKEND=onnxruntime or openvino)",
    )
    export.add_argument("checkpoint", help="checkpoint directory or hub id")
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--int8", action="store_true",
                        help="also quantize the weights to int8 (dynamic quantization)")
    export.add_argument("--int8-static", nargs="+", metavar="AUDIO", default=(),
                        help="static int8 (weights and activations) calibrated on these recordings "
                             "(e.g. tests/data/audio/*.wav)")
    export.add_argument("--opset", type=int, default=18)
    export.set_defaults(handler=_export_onnx)


def _dev_model(args: argparse.Namespace) -> int:
    from .devmodel import write_dev_checkpoint, write_dev_segmenter

    write = write_dev_segmenter if args.segmenter else write_dev_checkpoint
    out = write(args.directory, size=args.size, seed=args.seed)
    kind = "segmenter" if args.segmenter else "multi-level CTC model"
    print(f"wrote a {args.size} random-weight {kind} to {out} (dev weights: outputs mean nothing)")
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from services.common.errors import MeshError

    from .checkpoint import resolve_checkpoint
    from .export import export_onnx

    try:
        files = resolve_checkpoint(args.checkpoint)
        path = export_onnx(
            files, args.output, int8=args.int8, opset=args.opset, calibration=[Path(a) for a in args.int8_static]
        )
    except MeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
