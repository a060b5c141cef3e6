"""``python -m harness [overrides]``: compose the config, run the job, write the results. No logic here: how a
stopped process and a stopped sweep end is :mod:`harness.stopping`."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness import stopping
from harness.config import one_line, register
from harness.errors import HarnessError
from harness.experiment import run_job
from harness.schema import CONF

register()
log = logging.getLogger("harness")


@hydra.main(config_path=str(CONF), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    stopping.catch(cli=False)
    try:
        folders = run_job(cfg, Path(hydra_cfg.runtime.output_dir))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # the launcher records this job as failed and runs the others
        sys.exit(2)
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if isinstance(exc, stopping.Stopped) else signal.SIGINT
        stopping.say(stopping.job_line(signum, Path(hydra_cfg.runtime.output_dir)))
        stopping.exit_stopped(signum)
    finally:
        stopping.job_done()
    log.info("results in %s", folders[0] if len(folders) == 1 else f"{len(folders)} runs next to {folders[0]}")


def cli() -> None:
    """Run :func:`main`; a configuration Hydra cannot compose (an unknown plug-in or key, a bad override) or
    results that cannot be written also end with one ``error:`` line and exit status 2, not a traceback. A stop
    signal while a launcher's workers run the jobs stops them, then this process, with one line each."""
    from concurrent.futures.process import BrokenProcessPool

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own report
    stopping.catch(cli=True)
    try:
        main()
    except HarnessError:  # a failed job of a sweep: its line was printed when it failed, the others ran
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # e.g. results_dir is a file, or not writable
        print(f"error: {exc.strerror or exc}: {exc.filename}; choose another results_dir", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:  # a sweep's parent: each job that was running printed its own line
        signum = exc.args[0] if isinstance(exc, stopping.Stopped) else signal.SIGINT
        stopping.say(
            f"stopped by {signal.Signals(signum).name}: every finished evaluation is kept in records.csv; run the "
            "same command again to resume"
        )
        sys.exit(128 + signum)
    except BrokenProcessPool:  # a worker died; a stopped one stops the sweep instead (KeyboardInterrupt above)
        print(
            "error: a worker of the sweep died (killed, or out of memory), so the launcher stopped the others; "
            "every finished evaluation is kept in records.csv; run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    cli()
