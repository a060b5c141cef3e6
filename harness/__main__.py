"""``python -m harness [overrides]``: compose the config, run the job, write the results. No logic here."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.config import register
from harness.errors import HarnessError
from harness.experiment import run_job

register()
log = logging.getLogger("harness")


class Stopped(KeyboardInterrupt):
    """SIGTERM (what SLURM sends before it kills a job) or SIGINT (Ctrl-C) arrived."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        folders = run_job(cfg, Path(hydra_cfg.runtime.output_dir))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # the launcher records this job as failed and runs the others
        sys.exit(2)
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if isinstance(exc, Stopped) else signal.SIGINT
        print(
            f"stopped by {signal.Signals(signum).name}: every finished evaluation is kept in records.csv under "
            f"{hydra_cfg.runtime.output_dir}; run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(128 + signum)
    log.info("results in %s", folders[0] if len(folders) == 1 else f"{len(folders)} runs next to {folders[0]}")


if __name__ == "__main__":
    main()
