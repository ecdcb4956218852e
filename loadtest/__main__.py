"""python -m loadtest chaos [--seconds 60] [--faults worker-kill,pg-terminate,...]
python -m loadtest bench
python -m loadtest levers [--variants baseline,sync-2,...] [--refs main]"""

from __future__ import annotations

import argparse
import sys

from . import faults


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest")
    commands = parser.add_subparsers(dest="command", required=True)

    chaos = commands.add_parser("chaos", help="clients + faults + checker; exit 1 on violations")
    chaos.add_argument("--seconds", type=float, default=60)
    chaos.add_argument(
        "--faults",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(faults.FAULTS),
        help=f"comma-separated, from {', '.join(faults.FAULTS)} (default: all; '' for none)",
    )
    chaos.add_argument("--fault-gap", type=float, default=4.0, help="seconds between faults")
    chaos.add_argument("--instances", type=int, default=2)
    chaos.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    chaos.add_argument("--seed", type=int, default=1)
    chaos.add_argument(
        "--app",
        default="jointbank.wsgi",
        help="WSGI module to serve (loadtest.naive_wsgi: watch the checker catch lost updates)",
    )

    bench = commands.add_parser("bench", help="the benchmark table (docs/benchmarks.md)")
    bench.add_argument("--seconds", type=float, default=20)
    bench.add_argument("--clients", type=int, default=16)
    bench.add_argument("--workers", type=int, default=4)
    bench.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    bench.add_argument("--threads", type=int, default=4, help="per gthread worker")
    bench.add_argument("--write", help="append the results to this Markdown file")
    bench.add_argument(
        "--hot-only",
        action="store_true",
        help="only the hot-account rows, for quick iterations (never written to --write)",
    )

    levers = commands.add_parser("levers", help="hot-path variants against one baseline")
    levers.add_argument("--seconds", type=float, default=15)
    levers.add_argument("--rounds", type=int, default=2)
    levers.add_argument("--clients", type=int, default=16)
    levers.add_argument("--workers", type=int, default=4)
    levers.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    levers.add_argument("--threads", type=int, default=4, help="per gthread worker")
    levers.add_argument(
        "--variants",
        type=lambda text: [name for name in text.split(",") if name],
        default=["baseline"],
        help="comma-separated names from loadtest/levers.py (baseline first)",
    )
    levers.add_argument(
        "--refs",
        type=lambda text: [ref for ref in text.split(",") if ref],
        default=[],
        help="earlier commits to serve as variants too, e.g. main",
    )

    args = parser.parse_args(argv)
    if args.command == "chaos":
        unknown = set(args.faults) - set(faults.FAULTS)
        if unknown:
            parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
        from .chaos import Run

        return Run(args).execute()
    if args.command == "levers":
        from .levers import VARIANTS, Levers

        unknown = set(args.variants) - set(VARIANTS)
        if unknown or args.variants[:1] != ["baseline"]:
            parser.error(f"variants: baseline first, then from {', '.join(VARIANTS)}")
        return Levers(args).execute()
    from .bench import Bench

    return Bench(args).execute()


if __name__ == "__main__":
    sys.exit(main())
