"""Record a lever A/B's arms; ``docs/generate.py`` renders ``docs/levers.md`` from them.

    # once per arm, after its run and its benchmarks:
    python benchmarks/levers.py record docs/results/levers/blur-mix.json --arm wide \\
        --flags "--degradation wide" --run runs/ab/wide \\
        --bench shen=runs/eval/wide.shen2.json --bench mild=runs/eval/wide.mild.json
    python docs/generate.py                       # docs/results/levers/*.json → docs/levers.md

The A/B's file is written by hand first with its ``title``, ``question``, ``start``
and ``budget`` (and later its ``finding``); every figure comes from ``record``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from umsn_cli.benchmark.levers import BANDS, record_arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="add an arm's training and scores to an A/B")
    record.add_argument("lever", type=Path)
    record.add_argument("--arm", required=True)
    record.add_argument("--flags", default="", help="what sets this arm apart")
    record.add_argument("--run", type=Path, help="the arm's run folder (log.jsonl)")
    record.add_argument("--bench", action="append", default=[], help=f"BAND=FILE; BAND: {BANDS}")
    args = parser.parse_args()
    benches = {}
    for spec in args.bench:
        band, _, file = spec.partition("=")
        if band not in BANDS or not file:
            parser.error(f"--bench {spec}: give BAND=FILE with BAND one of {', '.join(BANDS)}")
        benches[band] = Path(file)
    record_arm(args.lever, args.arm, args.flags, args.run, benches)


if __name__ == "__main__":
    main()
