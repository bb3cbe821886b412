"""report.html as a browser shows it: every proposal on the page, escaped, with
its keyword hits marked, and the filter working (headless Chromium)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from pipelines import PROJECT_ROOT
from pipelines.driver.pipeline import evaluate
from pipelines.flow.tasks import load_tasks
from pipelines.report import write_report
from pipelines.scoring.metrics import task_metrics

HOSTILE = "<script>document.title='owned'</script> & <b>not bold</b>"


def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: apt-get install chromium (make setup does)"
    return found


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran."""
    done = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Proposals(HTMLParser):
    """Text of each ``div.proposal``, its ``<mark>`` texts, and which tasks are hidden."""

    def __init__(self) -> None:
        super().__init__()
        self.proposals: list[str] = []
        self.marks: list[str] = []
        self.hidden_tasks: list[str] = []
        self.title = ""
        self._in: str | None = None
        self._depth = 0
        self._mark = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "hidden" in a:
            self.hidden_tasks.append(a.get("id") or "")
        if tag == "div" and a.get("class") == "proposal":
            self._in, self._depth = "proposal", 1
            self.proposals.append("")
        elif self._in == "proposal" and tag == "div":
            self._depth += 1
        if tag == "mark":
            self.marks.append("")
            self._mark = True
        if tag == "title":
            self._in = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self._mark = False
        if self._in == "proposal" and tag == "div":
            self._depth -= 1
            if self._depth == 0:
                self._in = None
        if tag == "title":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "proposal":
            self.proposals[-1] += data
            if self._mark:
                self.marks[-1] += data
        elif self._in == "title":
            self.title += data


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-role run folder, scored by the pipeline's own code, with made-up answers."""
    tasks = [
        t
        for role in ("dev", "qa")
        for t in load_tasks(PROJECT_ROOT / "datasets" / f"{role}.jsonl")[:3]
    ]
    rows = []
    for t in tasks:
        for i in range(1, 4):
            proposal = f"Agent {i} on {t.task_id}: consider {t.keywords[0]} first."
            if (t.role, t.task_id, i) == ("qa", tasks[-1].task_id, 2):
                proposal = HOSTILE
            rows.append(
                {
                    "run_id": "r",
                    "task_id": t.task_id,
                    "role": t.role,
                    "agent_id": f"agent-{t.role}-{i:03d}",
                    "agent_index": i,
                    "temperature": 0.7 if i == 1 else 0.91,
                    "seed": i,
                    "prompt": t.prompt,
                    "proposal": proposal,
                    "prompt_tokens": 10,
                    "completion_tokens": 12,
                    "finish_reason": "stop",
                    "latency": 0.5,
                    "error": None,
                    "cached": False,
                    "batch_id": 0,
                    "batch_s": 1.0,
                    "started_at": 0.0,
                }
            )
    results = pd.DataFrame(rows)
    scored, diversity, metrics = evaluate(results, tasks, 10.0, None)
    out = tmp_path_factory.mktemp("run")
    results.to_parquet(out / "results.parquet")
    task_metrics(scored, diversity).to_parquet(out / "task_metrics.parquet")
    (out / "metrics.json").write_text(json.dumps({"run_id": "r", "wall_s": 10.0, **metrics}))
    write_report(out)
    return out


def test_the_rendered_page_shows_every_proposal_escaped_and_marked(run_dir: Path) -> None:
    results = pd.read_parquet(run_dir / "results.parquet")
    page = Proposals()
    page.feed(dump_dom((run_dir / "report.html").as_uri()))
    assert sorted(page.proposals) == sorted(results["proposal"])
    assert page.title.startswith("council-eval run")  # the hostile proposal ran no script
    marked = {m.lower() for m in page.marks}
    first_keywords = {
        p.split("consider ")[1].removesuffix(" first.").lower()
        for p in results["proposal"]
        if "consider" in p
    }
    assert first_keywords <= marked
    assert page.hidden_tasks == []


def test_a_filter_link_shows_only_the_matching_tasks(run_dir: Path) -> None:
    results = pd.read_parquet(run_dir / "results.parquet")
    task = results.iloc[0]
    page = Proposals()
    page.feed(dump_dom((run_dir / "report.html").as_uri() + f"#q=on%20{task.task_id}:&role=dev"))
    shown = {
        f"task-{r}-{t}"
        for r, t in results[["role", "task_id"]].drop_duplicates().itertuples(index=False)
    }
    assert set(page.hidden_tasks) == shown - {f"task-dev-{task.task_id}"}


class Sections(HTMLParser):
    """Ids of the page's task sections: all of them, and the hidden ones."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hidden: list[str] = []
        self.shown_text = ""
        self._in_shown = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.ids.append(a.get("id") or "")
            if "hidden" in a:
                self.hidden.append(a.get("id") or "")
        self._in_shown = a.get("id") == "shown"

    def handle_data(self, data: str) -> None:
        if self._in_shown:
            self.shown_text += data


@pytest.fixture(scope="module")
def paged(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The same run with two tasks a page: three pages, two of them scripts beside it."""
    out = tmp_path_factory.mktemp("paged")
    for name in ("results.parquet", "task_metrics.parquet", "metrics.json"):
        shutil.copy(run_dir / name, out / name)
    write_report(out, page_tasks=2)
    results = pd.read_parquet(out / "results.parquet")
    order = [f"task-{r}-{t}" for r, t in results[["role", "task_id"]].drop_duplicates().values]
    return out, order


def sections(url: str) -> Sections:
    page = Sections()
    page.feed(dump_dom(url))
    return page


def test_a_paged_report_holds_one_page_and_loads_another_on_demand(
    paged: tuple[Path, list[str]],
) -> None:
    out, order = paged
    assert sorted(p.name for p in (out / "report").iterdir()) == ["page-0002.js", "page-0003.js"]
    assert order[2] not in (out / "report.html").read_text()  # not in the page itself
    first = sections((out / "report.html").as_uri())
    assert first.ids == order[:2] and first.hidden == []
    second = sections((out / "report.html").as_uri() + "#page=2")
    assert second.ids == order[:4] and second.hidden == order[:2]  # page 3 never loaded
    assert "tasks 3\u20134 of 6" in second.shown_text


def test_a_filter_searches_every_page_of_a_paged_report(paged: tuple[Path, list[str]]) -> None:
    out, order = paged
    results = pd.read_parquet(out / "results.parquet")
    last = results.drop_duplicates(["role", "task_id"]).iloc[-1]
    page = sections((out / "report.html").as_uri() + f"#q=on%20{last.task_id}:")
    assert sorted(page.ids) == sorted(order)  # every page loaded
    assert set(page.ids) - set(page.hidden) == {f"task-{last.role}-{last.task_id}"}
    assert "1 of 6 tasks" in page.shown_text
    # The hostile proposal (page 3, a script) arrived as text: it ran nothing.
    hostile = dump_dom((out / "report.html").as_uri() + "#q=not%20bold")
    assert "<title>council-eval run" in hostile and "&lt;b&gt;not bold&lt;/b&gt;" in hostile


def test_a_keyword_that_reads_as_mathtext_is_drawn_as_text() -> None:
    """`$\\frac{1}{$` made matplotlib's mathtext parser raise: the report, and with it
    the run, stopped before tracking, on every resume."""
    from pipelines.report.plots import keyword_extremes

    uri = keyword_extremes({"$\\frac{1}{$": 0.0, "queue": 0.5, "$x$": 1.0})
    assert uri.startswith("data:image/png;base64,") and len(uri) > 1000
