"""The report and the analysis notebook, on a small results folder made here by real runs."""

from __future__ import annotations

import json
import os
import shutil
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


def _fake_run(source: Path, folder: Path, estimator: str, scores: dict[str, float], failed: str = "") -> None:
    """A copy of the rank run in ``source`` as if ``estimator`` had scored its architectures ``scores`` (``failed``:
    one recorded as a failure), its records in reverse order (pairing must go by architecture, not by row)."""
    import pandas as pd

    shutil.copytree(source, folder)
    summary = json.loads((folder / storage.SUMMARY).read_text())
    summary["estimator"] = estimator
    summary["config"]["estimator"] = {"name": estimator}
    (folder / storage.SUMMARY).write_text(json.dumps(summary))
    records = pd.read_csv(folder / storage.RECORDS, keep_default_na=False, na_values=["nan"])
    records["score"] = [scores[a] for a in records["arch"]]
    records.loc[records["arch"] == failed, ["score", "status"]] = [float("nan"), "failed"]
    records.iloc[::-1].to_csv(folder / storage.RECORDS, index=False, na_rep="nan")


@pytest.fixture(scope="module")
def paired_results(nb201_csv, tmp_path_factory) -> Path:
    """Real rank runs of one 40-architecture NB201 sample (params, flops, train12, full_train) and one of another
    sample (flops, 30 architectures), plus hand-made runs of the same sample named rmi (scores: the test accuracy
    itself, one architecture failed) and rmi_ce (a monotone transform of rmi's: the same order)."""
    tmp = tmp_path_factory.mktemp("paired")
    results = tmp / "results"
    for overrides in (["estimator=params"], ["estimator=flops"], ["estimator=train12"], ["estimator=full_train"]):
        cfg = compose_cfg(["task=rank", "n_archs=40", *overrides], tmp)
        run_job(cfg, results / overrides[0] / "seed=0")
    run_job(compose_cfg(["task=rank", "n_archs=30", "estimator=flops"], tmp), results / "other_sample" / "seed=0")
    truth = storage.read_records(results / "estimator=full_train" / "seed=0").set_index("arch")["test_acc"]
    rmi = {a: float(t) for a, t in truth.items()}
    _fake_run(results / "estimator=train12" / "seed=0", results / "rmi" / "seed=0", "rmi", rmi, truth.index[0])
    ce = {a: -1000.0 / t for a, t in rmi.items()}
    _fake_run(results / "estimator=train12" / "seed=0", results / "rmi_ce" / "seed=0", "rmi_ce", ce)
    return results


@pytest.fixture(scope="module")
def paired_report(paired_results, tmp_path_factory) -> Path:
    """The report of :func:`paired_results` (its folder); no problems."""
    out = tmp_path_factory.mktemp("paired_report")
    written, problems, _ = report.write_report(paired_results, out)
    assert not problems and out / "paired.md" in written and out / "paired.csv" in written
    return out


def test_paired_section_compares_each_estimator_with_rmi_flops_and_the_control(paired_results, paired_report):
    import pandas as pd

    from harness import metrics, seeding

    paired = pd.read_csv(paired_report / "paired.csv")
    for column in ("tau_diff_ci95", "ndcg_diff_ci95"):
        paired[column] = paired[column].map(json.loads)
    pairs = zip(paired["comparison"], paired["a"], paired["b"], strict=True)
    base = [(c, a.split(" [")[0], b.split(" [")[0]) for c, a, b in pairs]
    assert sorted(base) == sorted(
        [("vs rmi", e, "rmi") for e in ("params", "flops", "train12", "full_train")]
        + [("vs flops", e, "flops") for e in ("params", "train12", "full_train", "rmi_ce")]
        + [("teacher's effect", "rmi", "rmi_ce")]
    )  # the 30-architecture flops run is another sample: in no pair; rmi_ce is compared with rmi once, as control
    assert set(paired["n"]) == {39, 40}  # rmi's failure is left out of its pairs
    assert (paired.loc[paired["b"] == "rmi [n_archs=40]", "n"] == 39).all()

    # the numbers are those of the records, paired by architecture (rmi's rows are stored in reverse order)
    runs, _ = storage.load_runs(paired_results)
    folders = {s["estimator"]: f for f, s in runs if s["n_archs"] == 40}
    row = paired[(paired["a"] == "params [n_archs=40]") & (paired["b"] == "rmi [n_archs=40]")].iloc[0]
    a = storage.read_records(folders["params"]).set_index("arch")
    b = storage.read_records(folders["rmi"]).set_index("arch")
    both = sorted(set(a.index) & set(b.index[b["status"] == "ok"]))  # in the order of their names
    y = a.loc[both, "test_acc"].to_numpy()
    assert row["tau_b"] == pytest.approx(1.0)  # rmi's scores are the test accuracy
    assert row["tau_a"] == pytest.approx(metrics.kendall_tau(a.loc[both, "score"], y))
    assert row["tau_diff"] == pytest.approx(row["tau_a"] - 1.0) and row["ndcg_k"] == 2  # 6.4 % of 39
    ci = metrics.tau_diff_ci(a.loc[both, "score"].to_numpy(), y, y, seeding.rng(0, "paired bootstrap"))
    assert row["tau_diff_ci95"] == pytest.approx(list(ci)) and ci[1] < 0  # rmi is told apart: above
    assert row["ndcg_diff"] == pytest.approx(metrics.ndcg(a.loc[both, "score"], y, 2) - 1.0)

    # the same order: no difference, and an interval of exactly 0
    control = paired[paired["comparison"] == "teacher's effect"].iloc[0]
    assert control["tau_diff"] == 0.0 and control["tau_diff_ci95"] == [0.0, 0.0]
    assert control["ndcg_diff"] == 0.0 and control["ndcg_diff_ci95"] == [0.0, 0.0] and control["n"] == 39

    table = (paired_report / "paired.md").read_text().splitlines()
    line = next(ln for ln in table if "| teacher's effect | rmi [n_archs=40] | rmi_ce [n_archs=40] |" in ln)
    assert line.endswith("| 39 | 1.000 | 1.000 | +0.000 [+0.000, +0.000] | +0.000 [+0.000, +0.000] |")
    line = next(ln for ln in table if "| vs rmi | params [n_archs=40] | rmi [n_archs=40] |" in ln)
    assert f"| {row['tau_diff']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] |" in line


def test_rank_table_shows_ndcg_and_the_median_cost_per_architecture(paired_results, paired_report):
    lines = (paired_report / "rank.md").read_text().splitlines()
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    assert header[5:] == [
        "tau (test)",
        "nDCG (test)",
        "precision@5% (test)",
        "top-1 regret (test)",
        "vote answer: test acc.",
        "s per arch (median)",
        "cost (s)",
        "unit",
    ]
    runs, _ = storage.load_runs(paired_results)
    s = next(s for _, s in runs if s["estimator"] == "params" and s["n_archs"] == 40)
    cells = [c.strip() for c in next(ln for ln in lines if "| params [n_archs=40] |" in ln).strip("|").split("|")]
    lo, hi = s["ndcg_test_ci95"]
    assert cells[6] == f"{s['ndcg_test']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert cells[10] == f"{s['median_cost_per_arch_s']:.3g}" and s["median_cost_per_arch_s"] > 0


def test_settings_of_one_estimator_are_paired_with_each_other(paired_results, tmp_path):
    import pandas as pd

    from harness import metrics, seeding

    results = tmp_path / "results"
    shutil.copytree(paired_results, results)
    second = results / "rmi_beta1" / "seed=0"
    truth = storage.read_records(results / "estimator=full_train" / "seed=0").set_index("arch")["test_acc"]
    scores = {a: float(-abs(t - truth.median())) for a, t in truth.items()}  # another order than the first rmi's
    _fake_run(results / "estimator=train12" / "seed=0", second, "rmi", scores)
    summary = json.loads((second / storage.SUMMARY).read_text())
    summary["config"]["estimator"] = {"name": "rmi", "beta": 1.0}
    (second / storage.SUMMARY).write_text(json.dumps(summary))

    out = tmp_path / "report"
    _, problems, _ = report.write_report(results, out)
    paired = pd.read_csv(out / "paired.csv")
    [row] = paired[paired["comparison"] == "settings of rmi"].itertuples()
    assert {row.a, row.b} == {"rmi [beta=1,n_archs=40]", "rmi [n_archs=40]"} and not problems
    a, b = (storage.read_records(f).set_index("arch") for f in (second, results / "rmi" / "seed=0"))
    a, b = (a, b) if row.a == "rmi [beta=1,n_archs=40]" else (b, a)
    both = sorted(set(a.index[a["status"] == "ok"]) & set(b.index[b["status"] == "ok"]))
    y = a.loc[both, "test_acc"].to_numpy()
    ci = metrics.tau_diff_ci(
        a.loc[both, "score"].to_numpy(), b.loc[both, "score"].to_numpy(), y, seeding.rng(0, "paired bootstrap")
    )
    assert row.n == len(both) == 39 and json.loads(row.tau_diff_ci95) == pytest.approx(list(ci))
    assert (paired["comparison"] == "vs rmi").sum() == 2 * 4  # each rmi setting is a reference of the other four
