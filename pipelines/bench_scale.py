"""Cost as work grows: the pipeline at 180, 3,000 and 15,000 requests beside the
raw one-call ceiling on the same requests, phase by phase.

``python -m pipelines.bench_scale [--sizes 180 3000 15000] [--max-tokens 4]
[--executor ray] [--bracket-up-to 3000] [--out runs/bench-scale] [overrides ...]``

Per size it generates seeded synthetic tasks (every role, N/15 tasks each,
short varied prompts, 3 keywords each), then runs:

- ``raw``: ``vllm.LLM.chat`` in one call over the run's own requests (the same
  texts, temperatures and seeds): the ceiling;
- the pipeline: ``python -m pipelines.run role=all`` on those tasks, a process
  of its own, with the sink and the tracker on (NATS, MLflow on SQLite), as a
  user runs it;
- ``raw`` again for sizes up to ``--bracket-up-to``: the pipeline is compared
  with the mean of the raw runs around it (the engine's speed drifts).

Reported per size: end-to-end seconds of each, ``vs_raw`` (raw's seconds ÷ the
pipeline's: 1.0 is the ceiling), seconds per request, every phase's seconds and
share (``phases.json`` of the run: start, engine load, generate, land and
publish inside it, then results, score, settle, report, track), the driver's
peak RSS, report size and MLflow store growth. Writes ``bench-scale.json``,
``bench-scale.md`` and ``bench-scale.png`` (seconds per request vs requests)
into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines import PROJECT_ROOT
from pipelines.bench.scale import bench_size, markdown, plot, with_marginals
from pipelines.spec.exits import EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[180, 3000, 15000])
    parser.add_argument("--max-tokens", type=int, default=4, help="generation cap per request")
    parser.add_argument("--executor", default="ray", choices=["ray", "dask", "local"])
    parser.add_argument(
        "--bracket-up-to",
        type=int,
        default=3000,
        help="sizes up to this run raw again after the pipeline (the mean of both is the ceiling)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "bench-scale")
    parser.add_argument(
        "--replot", action="store_true", help="only redo the table and plot from --out's json"
    )
    parser.add_argument("overrides", nargs="*", help="run overrides for both, e.g. batch_size=60")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        rows = json.loads((args.out / "bench-scale.json").read_text())
    else:
        rows = []
        for size in args.sizes:
            bracket = size <= args.bracket_up_to
            rows.append(
                bench_size(size, args.out, args.max_tokens, args.executor, bracket, args.overrides)
            )
            (args.out / "bench-scale.json").write_text(json.dumps(rows, indent=2))
    rows = with_marginals(rows)
    text = markdown(rows)
    (args.out / "bench-scale.md").write_text(text + "\n")
    print(text)
    print(f"written: {args.out / 'bench-scale.json'}, {plot(rows, args.out / 'bench-scale.png')}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
