"""How much do RMI's scores depend on the batch, its size and the estimator seed? One table over recorded runs.

    python -m studies.rmi_variants LABEL=TRAJ.csv[+TRAJ2.csv] ... --baselines DIR [--steps 10,25,50] [--half select]

Each argument names one variant's trajectories (:mod:`studies.rmi_trajectories`, the same architectures in every
file; ``+`` joins files, e.g. the select and report halves). For each variant and step count k the table gives
Kendall tau against NB201 test accuracy of the paper's read-out (``loss@k``, = ``estimator.steps=k``) and of the
size-prior score (``-ln loss + 0.3 ln params``, = ``estimator.size_prior=0.3``), each with a 95% bootstrap interval,
the seconds per architecture, and the agreement (Kendall tau between the two variants' scores) with the first
variant, the reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from estimators.rmi import size_prior_score
from harness import metrics, seeding
from harness.benchmarks import NB201
from studies.rmi_analysis import baselines

PRIOR = 0.3


def load(spec: str, half: str | None) -> pd.DataFrame:
    """One variant's trajectories, the files of ``a.csv+b.csv`` joined, as (arch x step) losses and seconds; only
    the architectures of ``half`` if given."""
    traj = pd.concat([pd.read_csv(Path(part)) for part in spec.split("+")])
    if half:
        traj = traj[traj.split == half]
    return traj.pivot(index="arch", columns="step", values=["loss", "seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="LABEL=TRAJ.csv[+TRAJ2.csv]; the first is the reference")
    parser.add_argument("--baselines", type=Path, required=True, help="results folder with a rank run of params")
    parser.add_argument("--steps", default="10,25,50", help="comma-separated step counts")
    parser.add_argument("--half", choices=("select", "report"), help="only this half's architectures")
    parser.add_argument("--out", type=Path, default=None, help="write the table as CSV")
    args = parser.parse_args(argv)

    runs = {label: load(spec, args.half) for label, spec in (v.split("=", 1) for v in args.variants)}
    archs = sorted(set.intersection(*(set(run.index) for run in runs.values())))
    bench = NB201("cifar10").load()
    test = np.array([bench.test_accuracy(bench.space.parse(a)) for a in archs])
    params = baselines(args.baselines, archs)["params"][0]
    reference: dict[int, np.ndarray] = {}
    rows = []
    for label, run in runs.items():
        for k in (int(s) for s in args.steps.split(",")):
            if k not in run["loss"].columns:
                continue
            loss = run["loss"][k].loc[archs].to_numpy()
            reference.setdefault(k, loss)
            row = {"variant": label, "steps": k, "s_per_arch": run["seconds"][k].loc[archs].mean()}
            for name, score in (("loss", -loss), ("prior", np.asarray(size_prior_score(loss, params, PRIOR)))):
                ok = np.isfinite(score)
                row[f"tau_{name}"] = metrics.kendall_tau(score[ok], test[ok])
                row[f"{name}_lo"], row[f"{name}_hi"] = metrics.tau_ci(score[ok], test[ok], seeding.rng(0, "bootstrap"))
            row["agreement"] = metrics.kendall_tau(-loss, -reference[k])
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["variant", "steps"])
    if args.out:
        table.to_csv(args.out, float_format="%.4f")
    print(f"{len(archs)} architectures; tau vs NB201 test accuracy; agreement = tau with {next(iter(runs))}\n")
    print(table.to_string(float_format="%.3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
