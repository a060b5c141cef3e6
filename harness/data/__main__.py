"""``python -m harness.data convert SOURCE OUT [--allow-partial]`` and ``python -m harness.data check``.

Bad input ends with one ``error:`` line and exit status 2; ``check`` exits 1 when the main job lacks a file. When
the reader of the output goes away early (``check | head``), the command stops quietly with status 141, as a Unix
tool stopped by SIGPIPE does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import HarnessError


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; return the exit status."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return status
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return 141


def _run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="official NATS-Bench / NAS-Bench-201 results -> the harness's nb201.csv")
    conv.add_argument(
        "source", type=Path, help="NATS-tss-v1_0-3ffb9-simple/, NATS-tss-*.pickle.pbz2 or NAS-Bench-201-*.pth"
    )
    conv.add_argument("out", type=Path, help="the table to write, e.g. $HARNESS_DATA_DIR/nb201/nb201.csv")
    conv.add_argument("--allow-partial", action="store_true", help="convert a source missing architectures")
    chk = sub.add_parser("check", help="every data file the harness reads: present, checksum, where it comes from")
    chk.add_argument("--data-dir", default=None, help="the data folder (default: $HARNESS_DATA_DIR or ../shared/data)")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            from harness.data.convert import convert
            from harness.data.official import open_source

            manifest = convert(open_source(args.source), args.out, allow_partial=args.allow_partial)
            note = " (partial)" if manifest["partial"] else ""
            print(
                f"wrote {args.out}: {manifest['rows']:,} rows, {manifest['architectures']:,} of {manifest['of']:,} "
                f"architectures{note}; manifest {args.out.stem}.manifest.json"
            )
            return 0
        from harness.data.check import check

        return check(args.data_dir)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as exc:  # the output folder is not writable, a disk is full
        print(f"error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
