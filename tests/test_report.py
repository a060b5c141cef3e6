"""The report and the analysis notebook, on a small results folder made here by real runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import report, storage
from harness.experiment import run_job
from tests.conftest import ROOT, compose_cfg


@pytest.fixture(scope="module")
def results(nb201_csv, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    for overrides in (
        ["searcher=rs", "n_seeds=3"],
        ["searcher=rea", "n_seeds=3"],
        ["task=rank", "n_archs=30"],
        ["task=rank", "n_archs=30", "estimator=full_train"],
    ):
        cfg = compose_cfg([*overrides, "budget.max_cost_s=2000"], tmp)
        run_job(cfg, tmp / "results" / "_".join(overrides) / "seed=0")
    return tmp / "results"


def test_report_writes_tables_and_figures(results, tmp_path):
    written, problems, table = report.write_report(results, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted(
        ["summary.csv", "aggregate.csv", "rank.md"]
        + [f"{f}.{e}" for f in ("fig1a", "fig1b", "regret") for e in ("png", "pdf")]
    )
    assert not problems
    assert all(p.stat().st_size > 1000 for p in written if p.suffix in (".png", ".pdf"))
    import pandas as pd

    agg = pd.read_csv(tmp_path / "out" / "aggregate.csv")
    assert sorted(agg["estimator"]) == ["full_train", "train12", "train12", "train12"]
    assert set(agg.loc[agg["task"] == "search", "n"]) == {3}
    assert "incumbent_test_acc" in table and "kendall_tau_test" in table


def test_rank_table_and_fig1a_show_the_top_of_the_space(results, tmp_path):
    import pandas as pd

    from harness import plots

    report.write_report(results, tmp_path / "out")
    table = (tmp_path / "out" / "rank.md").read_text().splitlines()
    assert table[0].startswith("| benchmark | dataset | estimator |") and len(table) == 2 + 2
    runs, _ = storage.load_runs(results)
    full = next(s for _, s in runs if s["task"] == "rank" and s["estimator"] == "full_train")
    lo, hi = full["vote_answer_test_acc_ci95"]
    row = next(line for line in table if "| full_train |" in line)
    assert f"{full['vote_answer_test_acc']:.2f} [{lo:.2f}, {hi:.2f}]" in row  # value [95% interval]
    assert table.index(row) == 2  # full training ranks best: first
    rank = report.summaries_frame(runs)
    fig = plots.fig1a(rank[rank["task"] == "rank"])
    tau_panel, top_panel = fig.axes
    assert "vote" in top_panel.get_title().lower() and len(top_panel.lines) >= 2  # points, sample best, legend
    best_line = [ln for ln in top_panel.lines if ln.get_linestyle() == "--"]
    assert best_line and best_line[0].get_ydata()[0] == pytest.approx(max(rank["sample_best_test_acc"].dropna()))
    assert pd.notna(rank["top5_precision_test"]).sum() == 2


def test_regret_is_optimum_minus_incumbent_test(results):
    runs, _ = storage.load_runs(results)
    folder, s = next((f, s) for f, s in runs if s["task"] == "search")
    records = storage.read_records(folder)
    from harness.plots import incumbent_regret

    clock, reg = incumbent_regret(records, s["optimum_test_acc"])
    assert (reg >= 0).all() and len(reg) == len(records)
    best = records["score"].idxmax()
    assert reg[-1] == pytest.approx(s["optimum_test_acc"] - records["test_acc"][best])
    assert reg[-1] == pytest.approx(s["optimum_test_acc"] - s["incumbent_test_acc"])


def test_regret_of_old_records_follows_the_best_ok_score():
    import numpy as np
    import pandas as pd

    from harness.plots import incumbent_regret

    records = pd.DataFrame(  # written before answer_test_acc: a failure first, a tie, a failed high score
        {
            "clock_s": [1.0, 2.0, 3.0, 4.0, 5.0],
            "score": [np.nan, 0.5, 0.9, 0.9, 5.0],
            "status": ["error", "ok", "ok", "ok", "error"],
            "test_acc": [99.0, 90.0, 93.0, 94.0, 95.0],
        }
    )
    clock, reg = incumbent_regret(records, 100.0)
    assert clock.tolist() == [1, 2, 3, 4, 5]
    assert np.isnan(reg[0]) and reg[1:].tolist() == [10.0, 7.0, 7.0, 7.0]


def test_bad_files_are_named_and_skipped(results, tmp_path):
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(results, bad)
    truncated = next(bad.rglob("summary.json"))
    truncated.write_text(truncated.read_text()[:50])
    foreign = bad / "other" / "summary.json"
    foreign.parent.mkdir()
    foreign.write_text(json.dumps({"hello": 1}))
    assert report.main([str(bad), "--out", str(tmp_path / "o")]) == 0
    _, problems, _ = report.write_report(bad, tmp_path / "o2")
    text = "\n".join(problems)
    assert str(truncated) in text and "unreadable" in text
    assert str(foreign) in text and "not a harness run summary" in text


def test_empty_folder_says_so(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_notebook_executes_on_the_results(results):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    os.environ["HARNESS_RESULTS"] = str(results)
    try:
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
        ).execute()
    finally:
        del os.environ["HARNESS_RESULTS"]
    outputs = "".join(str(o.get("text", "")) for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "8 finished runs" in outputs
    images = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if "image/png" in o.get("data", {})
    ]
    assert len(images) == 3


def saved_figures(monkeypatch) -> dict:
    """{name: Figure} of every figure the report saves from now on (it still writes them)."""
    saved = {}
    save = report._save

    def keep(fig, out, name):
        saved[name] = fig
        return save(fig, out, name)

    monkeypatch.setattr(report, "_save", keep)
    return saved


def test_saved_figures_draw_the_stored_runs(results, tmp_path, monkeypatch):
    """Each figure the report saves draws what the runs hold: Figure 1b one point per searcher x estimator at the
    seeds' mean cost and test accuracy, the regret plot one curve each ending at the seeds' median final regret,
    Figure 1a one point per rank run at its tau; and each PNG is that figure, at its size."""
    import numpy as np
    from matplotlib.image import imread

    saved = saved_figures(monkeypatch)
    report.write_report(results, tmp_path / "out")
    assert sorted(saved) == ["fig1a", "fig1b", "regret"]
    for name, fig in saved.items():
        width, height = fig.get_size_inches() * 130  # the report's dpi
        assert imread(tmp_path / "out" / f"{name}.png").shape[:2] == (round(height), round(width))
    runs, _ = storage.load_runs(results)
    search = [s for _, s in runs if s["task"] == "search"]

    [ax] = saved["fig1b"].axes
    points = {c.get_label(): (c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0]) for c in ax.containers}
    assert len(points) == 2
    for searcher in ("rs", "rea"):
        seeds = [s for s in search if s["searcher"] == searcher]
        [(x, y)] = [xy for label, xy in points.items() if label.startswith(f"{searcher} + train12 (n=3")]
        assert x == pytest.approx(np.mean([s["total_cost_s"] for s in seeds]))
        assert y == pytest.approx(np.mean([s["incumbent_test_acc"] for s in seeds]))

    [ax] = saved["regret"].axes
    curves = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert len(curves) == 2
    for searcher in ("rs", "rea"):
        seeds = [s for s in search if s["searcher"] == searcher]
        [final] = [y[-1] for label, y in curves.items() if label.startswith(f"{searcher} + train12 (n=3")]
        assert final == pytest.approx(np.median([s["optimum_test_acc"] - s["incumbent_test_acc"] for s in seeds]))

    tau_panel = saved["fig1a"].axes[0]
    taus = sorted(c.lines[0].get_ydata()[0] for c in tau_panel.containers)
    assert taus == pytest.approx(sorted(s["kendall_tau_test"] for _, s in runs if s["task"] == "rank"))
    assert sorted(t.get_text() for t in tau_panel.texts) == ["full_train", "train12"]


@pytest.fixture(scope="module")
def free_results(data_dir, tmp_path_factory) -> Path:
    """Real runs on the two benchmarks that record no training time: every table evaluation costs 0 s."""
    for name in ("nbmacro/nas-bench-macro_cifar10.json", "nb301/nb301_sample.csv"):
        if not (data_dir / name).is_file():
            pytest.skip(f"{name} not found in {data_dir} (set HARNESS_DATA_DIR)")
    tmp = tmp_path_factory.mktemp("free")
    for bench in ("nbmacro", "nb301"):
        for overrides in (
            ["searcher=rs", "n_seeds=2", "budget.max_evals=20", "budget.max_cost_s=null"],
            ["searcher=rea", "budget.max_evals=15", "budget.max_cost_s=null"],
            ["task=rank", "n_archs=30"],
        ):
            overrides = [f"benchmark={bench}", "estimator=full_train", *overrides]
            cfg = compose_cfg(overrides, tmp)
            run_job(cfg, tmp / "results" / "_".join(overrides) / "seed=0")
    return tmp / "results"


def test_report_of_benchmarks_without_costs_draws_against_evaluations(free_results, tmp_path, monkeypatch):
    """NAS-Bench-Macro and NB301 record no training time, so every search costs 0 s: the report draws the searches
    against evaluations, says so on the axis, and puts the rank runs' 0 s on a cost axis that can show 0."""
    import numpy as np

    saved = saved_figures(monkeypatch)
    assert report.main([str(free_results), "--out", str(tmp_path / "out")]) == 0
    assert sorted(saved) == ["fig1a", "fig1b", "regret"]
    runs, problems = storage.load_runs(free_results)
    assert not problems and len(runs) == 2 * 4
    search = [s for _, s in runs if s["task"] == "search"]
    assert {s["total_cost_s"] for s in search} == {0.0}

    panels = {ax.get_title().split(": ")[1].split(" (")[0]: ax for ax in saved["regret"].axes}
    assert sorted(panels) == ["nb301 cifar10", "nbmacro cifar10"]
    for bench, ax in panels.items():
        assert ax.get_xlabel().startswith("evaluations (log scale; some searches here cost 0 s")
        assert ax.get_title().startswith("Regret over evaluations")
        curves = {line.get_label(): line for line in ax.get_lines()}
        # two configs of full_train's runs (their budgets differ), so each curve's label names its own
        assert sorted(curves) == ["rea + full_train [max_evals=15] (n=1)", "rs + full_train [max_evals=20] (n=2)"]
        for searcher, n_evals in (("rs", 20), ("rea", 15)):
            seeds = [s for s in search if s["searcher"] == searcher and f"{s['benchmark']} cifar10" == bench]
            line = next(ln for label, ln in curves.items() if label.startswith(searcher))
            assert line.get_xdata().tolist() == list(range(1, n_evals + 1))
            regret = np.median([s["optimum_test_acc"] - s["incumbent_test_acc"] for s in seeds])
            assert line.get_ydata()[-1] == pytest.approx(regret)

    for ax in saved["fig1b"].axes:
        assert ax.get_xlabel().startswith("evaluations (some searches here cost 0 s")
        xs = sorted(c.lines[0].get_xdata()[0] for c in ax.containers)
        assert xs == [15, 20]

    tau_panels = saved["fig1a"].axes[::2]
    for ax in tau_panels:
        assert ax.get_xscale() == "symlog" and "0: no recorded training time" in ax.get_xlabel()
        [point] = [c.lines[0] for c in ax.containers]
        assert point.get_xdata()[0] == 0.0 and ax.get_xlim()[0] < 0 < ax.get_xlim()[1]
