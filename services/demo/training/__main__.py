"""`python -m services.demo.training`: render the training data (cached), then train the demo
model for a wall-clock budget and write it (`make demo-model`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.demo.training")
    parser.add_argument("--out", type=Path, default=Path("services/asr/demo_model"))
    parser.add_argument("--data", type=Path, default=Path("~/.cache/muaalem/demo-train/data.pt").expanduser(),
                        help="the rendered training data (made when missing)")
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--render-budget-min", type=float, default=25.0, help="rendering stops after this")
    parser.add_argument("--budget-min", type=float, default=80.0, help="training wall-clock budget")
    parser.add_argument("--finish-by", default="", metavar="HH:MM",
                        help="UTC time the training must end by (caps --budget-min; for a shared machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init-from", type=Path, default=None, metavar="CHECKPOINT",
                        help="continue from this checkpoint's weights (e.g. on renderings of a fixed synthesizer)")
    parser.add_argument("--peak-lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    args = parser.parse_args(argv)

    import torch

    from .data import build
    from .train import train

    def log(message: str) -> None:
        print(time.strftime("%H:%M:%S"), message, flush=True)

    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        log(f"rendering {args.examples} recitations into {args.data}")
        summary = build(args.examples, args.data, args.seed, log, args.render_budget_min * 60)
        log(f"data: {json.dumps(summary)}")
    budget_s = args.budget_min * 60
    if args.finish_by:
        now = datetime.now(UTC)
        hour, minute = (int(x) for x in args.finish_by.split(":"))
        end = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        budget_s = min(budget_s, max(60.0, (end - now).total_seconds()))
    log(f"training for {budget_s / 60:.1f} min")
    from .train import PEAK_LR

    recipe = train(args.data, args.out, args.seed, budget_s, args.threads, log, init_from=args.init_from,
                   peak_lr=PEAK_LR if args.peak_lr is None else args.peak_lr)
    log(f"wrote {args.out}: {json.dumps({k: v for k, v in recipe.items() if k != 'history'})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
