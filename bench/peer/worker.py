"""The peer, quran-muaalem 0.2.2's `Muaalem`, as a worker the benchmark drives (run it with
.venv-peer/bin/python, made by bench/peer/setup_env.sh).

Usage: worker.py CHECKPOINT [--dtype default|float32|bfloat16]

`default` constructs `Muaalem(CHECKPOINT, device="cpu")` with nothing else: the author's
defaults (bfloat16). The worker answers one JSON line per request line on stdin:
{"wave": ".npy of 16 kHz float32 samples", "uthmani": ..., "moshaf": {MoshafAttributes fields}}
-> {"ms": time of the Muaalem call, "phonemes": decoded text}. The reference it needs (the
author's API takes one to decode the sifat) is phonetized once per passage, outside the timing.
The first line it writes says it is ready, with its versions and load time. Library output goes
to stderr so that stdout carries the protocol alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--dtype", choices=("default", "float32", "bfloat16"), default="default")
    args = parser.parse_args()
    protocol = sys.stdout
    sys.stdout = sys.stderr

    import numpy as np
    import torch
    from quran_muaalem import Muaalem
    from quran_transcript import MoshafAttributes, quran_phonetizer

    started = time.perf_counter()
    if args.dtype == "default":
        muaalem = Muaalem(args.checkpoint, device="cpu")
    else:
        muaalem = Muaalem(args.checkpoint, device="cpu", dtype=getattr(torch, args.dtype))
    load_s = time.perf_counter() - started
    references: dict[str, Any] = {}

    def reply(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message, ensure_ascii=False) + "\n")
        protocol.flush()

    reply(
        {
            "ready": True,
            "load_s": load_s,
            "dtype": str(muaalem.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "versions": {
                name: metadata.version(name) for name in ("quran-muaalem", "transformers", "torch", "quran-transcript")
            },
        }
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            key = json.dumps([request["uthmani"], request["moshaf"]], sort_keys=True, ensure_ascii=False)
            if key not in references:
                references[key] = quran_phonetizer(
                    request["uthmani"], MoshafAttributes(**request["moshaf"]), remove_spaces=True
                )
            wave = np.load(request["wave"]).astype(np.float32)
            began = time.perf_counter()
            (out,) = muaalem([wave], [references[key]], sampling_rate=16_000)
            elapsed_ms = (time.perf_counter() - began) * 1000
            reply({"ms": elapsed_ms, "phonemes": out.phonemes.text})
        except Exception as exc:  # the benchmark reports the peer's failure instead of hanging
            reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
