"""Wall time of the main job's estimator in one process and with a lookahead worker (``workers=2``), side by side
in one session (``make bench``; run it on an idle machine with two free cores, or the ratio means nothing).

Each case runs the real CLI job with ``estimator=rmi threads=1 score_cache=off`` (no score comes from a cache),
``workers=1`` then ``workers=2``, and checks that the two record the same architectures and scores. Cases: a rank
run of ``N_RANK`` architectures (every guess right: the ideal 2x), and an RMI-NAS search with a short warm-up
(``N_WARMUP``) whose guided phase shows the real share of right guesses. One round each: a round is minutes.
The ratios are printed at the end, with the share of right guesses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.bench
N_RANK = 16
N_WARMUP = 16
CASES = {
    "rank": ["task=rank", f"n_archs={N_RANK}"],
    "search": [
        "searcher=rminas",
        f"searcher.n_warmup={N_WARMUP}",
        "searcher.n_positives=8",
        "budget.max_evals=60",
    ],
}
#: (case, workers) -> (wall seconds, records without their times, lookahead summary)
RESULTS: dict[tuple[str, int], tuple[float, str, dict[str, int]]] = {}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_lookahead_wall_time(benchmark, tmp_path: Path, case: str, workers: int) -> None:
    overrides = [
        *CASES[case],
        "estimator=rmi",
        "threads=1",
        f"workers={workers}",
        "score_cache=off",
        "progress=false",
        f"results_dir={tmp_path}",
    ]

    def job() -> None:
        subprocess.run([sys.executable, "-m", "harness", *overrides], check=True, capture_output=True)

    t0 = time.perf_counter()
    benchmark.pedantic(job, rounds=1, iterations=1)
    wall = time.perf_counter() - t0
    [folder] = [p.parent for p in tmp_path.rglob("records.csv")]
    records = pd.read_csv(folder / "records.csv", keep_default_na=False)
    what = records.drop(columns=["cost_s", "clock_s", "wall_s"]).to_csv(index=False)
    ahead = json.loads((folder / "summary.json").read_text()).get("lookahead", {})
    RESULTS[(case, workers)] = (wall, what, ahead)
    if (case, 1) in RESULTS and (case, 2) in RESULTS:
        assert RESULTS[(case, 1)][1] == RESULTS[(case, 2)][1], "workers=2 recorded another run"


def test_report() -> None:
    for case in CASES:
        if (case, 1) in RESULTS and (case, 2) in RESULTS:
            one, two = RESULTS[(case, 1)][0], RESULTS[(case, 2)][0]
            ahead = RESULTS[(case, 2)][2]
            print(
                f"\n{case}: workers=1 {one:.0f} s, workers=2 {two:.0f} s, ratio {one / two:.2f}; "
                f"right guesses {ahead.get('right_guesses')} of {ahead.get('guesses')}"
            )
