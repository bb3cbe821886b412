"""``python -m pipelines.report RUN_DIR``: (re)write a run folder's report.html from its files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.report import write_report
from pipelines.spec.exits import EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="the run folder (holds results.parquet)")
    args = parser.parse_args(argv)
    print(write_report(args.run_dir))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
