"""What `dvc exp show` and `dvc plots show` are given, read from dvc.yaml and .dvc/config.

DVC draws every file a stage declares under ``plots:`` on its own, with default axes,
as well as in each top-level plot naming it: each file in one place only, or the page
shows duplicates (a train-history plot of ``lr`` against the row number, an empty second
confusion matrix). Every DVC metrics file is a column group of ``dvc exp show``: one
small file, so the headline leads (its key order: tests/unit/test_curves.py).
"""

from __future__ import annotations

import configparser
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PATHS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["paths"]


def resolved(entry: Any) -> str:
    """An out/metrics/plots entry's path, ${paths.key} resolved from params.yaml."""
    name = next(iter(entry)) if isinstance(entry, dict) else entry
    return re.sub(r"\$\{paths\.(\w+)\}", lambda m: str(PATHS[m[1]]), str(name))


def stages() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]  # type: ignore[no-any-return]


def top_level_plot_lines() -> list[tuple[str, str]]:
    """(file, column) of each line the top-level plots draw."""
    lines = []
    for plot in yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]:
        ((_, spec),) = plot.items()
        for file, columns in spec["y"].items():
            lines += [(resolved(file), c) for c in ([columns] if isinstance(columns, str) else columns)]
    return lines


def test_each_plot_file_is_drawn_once_and_read_from_git() -> None:
    # A stage's plots: would be drawn a second time, with default axes (the last column).
    assert {name: s["plots"] for name, s in stages().items() if "plots" in s} == {}
    lines = top_level_plot_lines()
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    files = {file for file, _ in lines}
    uncached = {resolved(o) for s in stages().values() for o in s.get("outs", []) if isinstance(o, dict)}
    # In git, not DVC's cache: `dvc plots diff` between experiments reads them from their commits.
    assert files <= uncached
    assert files == {PATHS[k] for k in ("train_history", "confusion_matrix", "roc_curve", "pr_curve")}
    assert (PATHS["train_history"], "lr") not in lines  # a schedule, not a result


def test_one_small_metrics_file_and_the_data_reports_stay_reports() -> None:
    metrics = [resolved(m) for stage in stages().values() for m in stage.get("metrics", [])]
    assert metrics == [PATHS["metrics"]]
    outs = {stage: [resolved(o) for o in s.get("outs", [])] for stage, s in stages().items()}
    assert PATHS["validation_report"] in outs["validate"] and PATHS["split_report"] in outs["split"]


def test_the_plots_page_loads_vega_from_itself() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()  # DVC resolves it from .dvc/
    page = template.read_text(encoding="utf-8")
    assert "{plot_divs}" in page
    assert "{scripts}" not in page  # where DVC would add its CDN <script src=...> tags
    assert re.findall(r"<script[^>]*\bsrc\s*=", page) == [] and "<link" not in page
    for name in ("vega", "vega-lite", "vega-embed"):  # inlined, in load order
        assert f"<script>/* {name} " in page
    assert page.index("/* vega ") < page.index("/* vega-lite ") < page.index("/* vega-embed ")
    assert 'renderer: "svg"' in page  # titles as page text (canvas draws them as pixels)
