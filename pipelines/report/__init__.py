"""``report.html``: one self-contained page per run, rendered from
``templates/report.html.j2`` (Jinja2, autoescaped; no network, opens from file://).

It holds the figures with their 95 % intervals, the per-agent table, readable
plots and, per task, every agent's proposal side by side with the keyword hits
marked, filterable by text and role. Tasks come in pages of ``PAGE_TASKS``:
the first is in the page itself, the others are scripts in ``report/`` beside
it, loaded when shown (or when a filter searches them), so a run of 15,000
proposals opens as fast as a small one. ``python -m pipelines.report
<run_dir>`` rebuilds it from the run's files.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from evaluators import keyword_spans
from pipelines.deliberation.accuracy import truth_lines as deliberation_truth_lines
from pipelines.deliberation.rounds import deliberation_notes
from pipelines.report import plots
from pipelines.runtime.durable import own_dir, write_text
from pipelines.scoring.metrics import agent_table
from pipelines.scoring.truth import truth_lines
from pipelines.spec.metrics import (
    DIVERSITY_METRICS,
    LOWER_IS_BETTER,
    QUALITY_METRICS,
    ROUND_METRICS,
)
from pipelines.spec.run_folder import (
    METRICS_FILE,
    PAGE_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    RUN_INFO_FILE,
    TABLES,
    TASK_METRICS_FILE,
    final,
    upgrade,
)

PAGE_TASKS = 50
THROUGHPUT = [
    "requests",
    "errors",
    "completion_tokens",
    "tokens_per_s",
    "generation_tokens_per_s",
    "requests_per_s",
    "latency_p50_s",
    "latency_p95_s",
]
ROLE_FIGURES = ["keyword_relevance", "keyword_full_coverage", "unique_ratio", "distinct_2"]


def highlighted(text: str, keywords: list[str]) -> Markup:
    """``text``, escaped, with each keyword occurrence in ``<mark>``."""
    out, pos = [], 0
    for start, end in keyword_spans(text, keywords):
        out += [escape(text[pos:start]), Markup("<mark>"), escape(text[start:end])]
        out.append(Markup("</mark>"))
        pos = end
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def figure_rows(figures: dict[str, Any], names: list[str]) -> list[dict[str, str]]:
    """``name``, ``value``, ``ci`` and ``sd`` (across repeats) text for each figure present."""
    rows = []
    for name in names:
        if (v := figures.get(name)) is None:
            continue
        low = figures.get(f"{name}_ci_low")
        ci = "" if low is None else f"[{low:.3f}, {figures[f'{name}_ci_high']:.3f}]"
        sd = figures.get(f"{name}_repeat_sd")
        value = f"{v:.3f}" if isinstance(v, float) else str(v)
        rows.append(
            {"name": name, "value": value, "ci": ci, "sd": "" if sd is None else f"{sd:.3f}"}
        )
    return rows


def task_cards(
    results: pd.DataFrame, tm: pd.DataFrame, chair: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """Per task: its prompt, keywords (hit by anyone or not), diversity, each
    agent's proposal with its scores, in the run's order, and the council's final
    answer when a chair wrote one (or a proposal stood in).

    One pass over plain records (a run of 15,000 proposals renders in seconds).
    """
    key = ["role", "task_id", "agent_id", "repeat"]
    diversity = [c for c in DIVERSITY_METRICS if c in tm]
    truth = [c for c in ("answer_extracted", "verdict") if c in tm]
    scores = ["keywords", "keyword_hits", "keyword_relevance", *diversity, *truth]
    rows = results.merge(tm[[*key, *scores]], on=key, how="inner")
    rows["task_order"] = rows.groupby(["role", "task_id"], sort=False).ngroup()
    rows = rows.sort_values(["task_order", "repeat", "agent_index"], kind="stable")
    finals: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if chair is not None:
        # The chair's verdict, made when the run was scored (a task with a reference).
        judged = (
            {
                (r["role"], r["task_id"], r["repeat"]): verdict_text(
                    {"verdict": r["chair_verdict"], "answer_extracted": r.get("chair_answer")}
                )
                for r in tm.drop_duplicates(["role", "task_id", "repeat"]).to_dict("records")
            }
            if "chair_verdict" in tm
            else {}
        )
        for c in chair.sort_values("repeat", kind="stable").to_dict("records"):
            source = (
                "the chair" if not c["fallback"] else f"{c['source']}'s proposal (chair failed)"
            )
            verdict = judged.get((c["role"], c["task_id"], c["repeat"]), "")
            finals.setdefault((c["role"], c["task_id"]), []).append(
                {
                    "repeat": c["repeat"],
                    "source": source,
                    "answer": c["answer"],
                    "verdict": verdict,
                }
            )
    cards = []
    records = rows.to_dict("records")
    for (role, task_id), group in itertools.groupby(
        records, key=lambda r: (r["role"], r["task_id"])
    ):
        part = list(group)
        keywords = list(part[0]["keywords"])
        hit_any = [any(r["keyword_hits"][i] for r in part) for i in range(len(keywords))]
        first = part[0]
        cards.append(
            {
                "role": role,
                "task_id": task_id,
                "finals": [
                    f | {"answer": highlighted(f["answer"], keywords)}
                    for f in finals.get((role, task_id), [])
                ],
                "prompt": first["prompt"],
                "keywords": list(zip(keywords, hit_any, strict=True)),
                "diversity": [(c, first[c]) for c in diversity if pd.notna(first[c])],
                "agents": [
                    {
                        "agent_id": r["agent_id"],
                        "repeat": r["repeat"],
                        "temperature": r["temperature"],
                        "relevance": r["keyword_relevance"],
                        "tokens": r["completion_tokens"],
                        "finish": r["finish_reason"],
                        "error": r["error"],
                        "verdict": verdict_text(r) if truth else "",
                        "proposal": highlighted(r["proposal"] or "", keywords),
                    }
                    for r in part
                ],
            }
        )
    return cards


def verdict_text(row: dict[str, Any]) -> str:
    """``answer 4: correct`` (a task with a reference answer), else ``""``."""
    verdict = row.get("verdict")
    if not isinstance(verdict, str):
        return ""
    answer = row.get("answer_extracted")
    return f"answer {answer}: {verdict}" if isinstance(answer, str) else verdict.replace("_", " ")


def figures_section(metrics: dict[str, Any], tm: pd.DataFrame) -> list[tuple[str, str]]:
    """The report's plots, (title, PNG data URI)."""
    overall = metrics["overall"]
    quality = [m for m in QUALITY_METRICS if m in overall]
    lower = sorted(LOWER_IS_BETTER & set(quality))
    out = []
    if "rounds" in metrics:
        chair = metrics.get("chair", {}).get("judge_score")
        out.append(
            ("Per round: quality, diversity, judge", plots.round_curves(metrics["rounds"], chair))
        )
    out += [
        (
            f"Quality, 95% CI over tasks (lower {', '.join(lower)} = more diverse)",
            plots.interval_bars(
                quality,
                [
                    (
                        overall[m],
                        overall.get(f"{m}_ci_low", overall[m]),
                        overall.get(f"{m}_ci_high", overall[m]),
                    )
                    for m in quality
                ],
                "run-level figure",
            ),
        ),
        ("Keyword relevance by agent", plots.per_agent(tm)),
    ]
    if tm["temperature"].nunique() > 1:
        out.append(("Keyword relevance by temperature", plots.by_temperature(tm)))
    if overall.get("keyword_hit_rates"):
        out.append(
            ("Keywords: least and most hit", plots.keyword_extremes(overall["keyword_hit_rates"]))
        )
    spread = [c for c in ("distinct_2", "self_bleu", "embedding_diversity") if c in tm]
    if spread:
        per_task = tm.groupby(["role", "task_id"], sort=False)[spread].first().reset_index()
        out.append(
            (
                "Diversity across tasks (box: quartiles, triangle: mean)",
                plots.diversity_spread(per_task, spread),
            )
        )
    return out


def render(run_dir: Path, page_tasks: int = PAGE_TASKS) -> tuple[str, list[str]]:
    """The report page for the run in ``run_dir`` and its later pages' scripts."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    info_path = run_dir / RUN_INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    tm = upgrade(pd.read_parquet(run_dir / TASK_METRICS_FILE), ["repeat"])
    results = upgrade(pd.read_parquet(run_dir / RESULTS_FILE))
    # The task as put to the council (a later round's prompt quotes other proposals).
    first = results[results["round"] == 1]
    prompts = first.groupby(["role", "task_id"], sort=False)["prompt"].first().to_dict()
    results = final(results)  # the task view: the full council's last round
    chair_path = run_dir / TABLES["chair"]
    chair = pd.read_parquet(chair_path) if chair_path.is_file() else None
    overall = metrics["overall"]
    roles = metrics.get("roles", {})
    env = Environment(
        loader=PackageLoader("pipelines.report", "templates"),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tasks = [
        c | {"prompt": prompts[(c["role"], c["task_id"])]} for c in task_cards(results, tm, chair)
    ]
    role_names = sorted(tm["role"].unique())
    repeats = overall.get("repeats", 1)
    cards = env.get_template("tasks.html.j2")
    pages = [
        cards.render(
            tasks=tasks[i : i + page_tasks],
            page=i // page_tasks + 1,
            role_names=role_names,
            repeats=repeats,
        )
        for i in range(0, max(len(tasks), 1), page_tasks)
    ]
    html = env.get_template("report.html.j2").render(
        first_page=Markup(pages[0]),
        pages=len(pages),
        page_dir=PAGE_DIR,
        page_tasks=page_tasks,
        task_count=len(tasks),
        run_id=metrics["run_id"],
        info=info,
        metrics=metrics,
        overall=overall,
        quality=figure_rows(overall, QUALITY_METRICS),
        throughput=figure_rows(overall, THROUGHPUT),
        roles=[(role, figure_rows(f, ROLE_FIGURES)) for role, f in roles.items()],
        role_names=role_names,
        agents=agent_table(tm).to_dict(orient="records"),
        scaling=metrics.get("scaling"),
        rounds=metrics.get("rounds"),
        round_metrics=[
            n for n in ROUND_METRICS if any(r.get(n) is not None for r in metrics.get("rounds", []))
        ],
        round_gain=metrics.get("round_gain", {}),
        deliberation=deliberation_notes(metrics),
        truth=truth_lines(overall) + deliberation_truth_lines(metrics),
        figures=figures_section(metrics, tm),
    )
    scripts = [f"councilPage({n}, {json.dumps(page)});\n" for n, page in enumerate(pages[1:], 2)]
    return html, scripts


def write_report(run_dir: Path, page_tasks: int = PAGE_TASKS) -> Path:
    """``report.html`` and, for a run of more than one page, ``report/``."""
    html, scripts = render(run_dir, page_tasks)
    pages = run_dir / PAGE_DIR
    for old in pages.glob("page-*.js"):  # a rebuilt report leaves no stale page
        old.unlink()
    if scripts:
        own_dir(pages)
    for n, script in enumerate(scripts, 2):
        write_text(pages / f"page-{n:04d}.js", script)
    return write_text(run_dir / REPORT_FILE, html)
