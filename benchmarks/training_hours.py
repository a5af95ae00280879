"""Hours of training steps of runs, from their ``log.jsonl``, as docs/training.md counts them.

A run is its folder, optionally cut at a step (``runs/fast/bnet:27250``, the step
the large run was grown from). Stalled log windows (a paused run, a competing job)
count at the run's median rate; see :func:`umsn_cli.train.report.training_hours`.

    python benchmarks/training_hours.py runs/fast/snet runs/fast/bnet:27250 \\
        runs/fast/bnet-large:5000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from umsn_cli.train.report import training_hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="RUN_FOLDER or RUN_FOLDER:LAST_STEP")
    args = parser.parse_args()
    print("| run | to step | steps/h (median) | hours | as logged |")
    print("|---|---|---|---|---|")
    total = 0.0
    for spec in args.runs:
        folder, _, until = spec.partition(":")
        log = Path(folder) / "log.jsonl"
        history = [json.loads(line) for line in log.read_text().splitlines() if line]
        time = training_hours(history, int(until) if until else None)
        total += time.hours
        print(f"| {folder} | {until or 'end'} | {time.median_rate:,.0f} | {time.hours:.2f} | "
              f"{time.logged_hours:.2f} |")  # fmt: skip
    print(f"| all | | | **{total:.2f}** | |")


if __name__ == "__main__":
    main()
