"""Write a task file with reference answers:
``python -m pipelines.make_dataset reasoning_gym <dataset> --size N --seed S``, or
``python -m pipelines.make_dataset human_eval [--size N]`` (code, run in a sandbox).

The file is a council's dataset like any other (``dataset=<file>``); its tasks
carry ``answer``, a ``verifier`` and what it needs, so a run reports accuracy,
the majority vote and pass@N. The same arguments give the same file
(reasoning-gym and human-eval are pinned).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines import UserError
from pipelines.config import known_roles
from pipelines.flow.task_sources import human_eval_tasks, reasoning_gym_tasks
from pipelines.flow.tasks import load_tasks
from pipelines.runtime.durable import write_atomic
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_OK


def _setting(text: str) -> tuple[str, object]:
    """``max_terms=2`` → ``("max_terms", 2)``: the value as JSON, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.make_dataset",
        description="Write a JSONL task file with reference answers from a generator.",
    )
    parser.add_argument("source", choices=["reasoning_gym", "human_eval"], help="where from")
    parser.add_argument(
        "dataset", nargs="?", help="reasoning_gym: the generator (basic_arithmetic, chain_sum)"
    )
    parser.add_argument(
        "--size", type=int, help="tasks to write (default: 50; every problem for human_eval)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    parser.add_argument("--role", default="data", help="the council role (default data)")
    parser.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a generator option, e.g. --set max_terms=2 (repeatable; values are JSON)",
    )
    parser.add_argument(
        "--choices",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        metavar="A,B",
        help="reasoning_gym: verify with 'choice' over these answers instead of the "
        "generator's scorer (case-insensitive), e.g. --choices Yes,No",
    )
    parser.add_argument(
        "--out", type=Path, help="the file (default: datasets/<dataset>-<seed>.jsonl)"
    )
    args = parser.parse_args(argv)
    if args.size is not None and args.size < 1:
        parser.error("--size must be >= 1")
    if args.role not in known_roles():
        parser.error(f"--role must be one of {known_roles()}")
    gym = args.source == "reasoning_gym"
    if gym != (args.dataset is not None):
        parser.error("reasoning_gym needs the generator's name; human_eval takes none")
    if args.choices is not None and (not gym or len(args.choices) < 2):
        parser.error("--choices takes 2 or more answers, for reasoning_gym")
    name = f"{args.dataset}-{args.seed}" if gym else "human_eval"
    out = args.out or Path("datasets") / f"{name}.jsonl"
    try:
        if gym:
            settings = dict(args.settings)
            records = reasoning_gym_tasks(
                args.dataset, args.size or 50, args.seed, args.role, settings, args.choices
            )
        else:
            records = human_eval_tasks(args.size, args.role)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    load_tasks(out, roles=[args.role])  # the file reads back as a dataset
    print(
        f"{out}: {len(records)} {args.dataset or args.source} tasks for role {args.role}; "
        + (
            "each solution passed"
            if not gym
            else f"each reference one of {args.choices}"
            if args.choices
            else "each reference re-scored 1.0 by its generator"
        )
    )
    print(f"run it: python -m pipelines.run role={args.role} dataset={out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
