"""``python -m harness.cache``: export and import score files (:mod:`~harness.cache.transfer`), carry scores across
a code change that leaves them (:mod:`~harness.cache.carry`)."""

from __future__ import annotations

from pathlib import Path

from harness.cache.backends import open_cache
from harness.cache.carry import carry_scores
from harness.cache.transfer import check_key, export_scores, import_scores, read_scores, refuse_conflicts
from harness.errors import ConfigError
from harness.plugins import plain


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cache export|import FILE [overrides]`` and ``carry [overrides] [--verify N]``. An import
    reads and checks the whole file before it opens the cache, so a file that is refused leaves no database
    behind."""
    import argparse
    import sys

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from harness.config import compose
    from harness.errors import HarnessError

    parser = argparse.ArgumentParser(
        prog="python -m harness.cache", description="Move live estimators' scores between machines and code versions."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    overrides = "harness overrides: cache_dir=..., score_cache=..., estimator=NAME"
    for name, what in (("export", "write scores to FILE (estimator=NAME: only its scores)"), ("import", "load FILE")):
        command = commands.add_parser(name, help=what)
        command.add_argument("file", type=Path, help="the CSV score file")
        command.add_argument("overrides", nargs="*", help=overrides)
    carry = commands.add_parser("carry", help="keep an estimator's scores across a code change that leaves them")
    carry.add_argument("overrides", nargs="*", help=overrides + " (needed)")
    carry.add_argument("--verify", type=int, default=5, help="scores recomputed per older key (default 5)")
    args = parser.parse_args(argv)
    try:
        cfg = compose(args.overrides)
        if args.command == "import":
            if cfg.score_cache == "off":
                raise ConfigError("score_cache=off: name the score cache to import into")
            rows = read_scores(args.file)
            for key, benchmark in sorted({(r[0], r[1]) for r in rows}):
                check_key(key, benchmark, cfg.data_dir)
            refuse_conflicts(args.file, rows, {})
        cache = open_cache(cfg.score_cache, cfg.cache_dir)
        if cache is None:
            raise ConfigError(f"score_cache=off: name the score cache to {args.command} scores of")
        if args.command == "import":
            new = import_scores(cache, args.file, rows)
            print(f"imported {new} new scores ({len(rows) - new} already present) from {args.file} into {cache.where}")
        elif args.command == "export":
            params = None
            if any(o.startswith("estimator") for o in args.overrides):
                params = {k: v for k, v in plain(cfg.estimator).items() if k != "name"}
            n, left_out = export_scores(cache, args.file, params=params, data_dir=cfg.data_dir)
            older = f" ({left_out} under older code keys left out)" if left_out else ""
            print(f"exported {n} scores to {args.file}{older}")
        else:
            if not any(o.startswith("estimator=") for o in args.overrides):
                raise ConfigError("carry needs the estimator whose scores to carry: estimator=NAME")
            carried = carry_scores(cache, cfg, args.verify)
            if not carried:
                print(f"every score of {cfg.estimator.name} in {cache.where} is under this code's key: nothing to do")
            for c in carried:
                what = f"{cfg.estimator.name} on {c.benchmark}, code {c.old} -> {c.new}: {c.n} scores"
                if c.refused:
                    print(f"not carried: {what}; {c.refused}")
                else:
                    print(f"carried {what} ({c.stored} new), {len(c.checked)} recomputed bit for bit")
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as exc:  # an unknown estimator or key in the overrides
        detail = " ".join(str(exc).split()).split(" Config search path:")[0]
        print(f"error: {detail}", file=sys.stderr)
        return 2
