"""Typed errors. Every error a user can cause derives from :class:`HarnessError`; the CLI prints its message as one
line and exits non-zero, without a traceback. No message carries a password: :func:`redacted` hides one, and
:func:`refuse_password` refuses a setting that holds one (the score cache's URL, any config value)."""

from __future__ import annotations

import re


class HarnessError(Exception):
    """Base class of every error that is the user's input, data or configuration (not a bug)."""


class ConfigError(HarnessError):
    """A configuration value is invalid (unknown dataset, negative budget, ...)."""


class DataFileError(HarnessError):
    """A required data file is missing or malformed."""


class StateFileError(HarnessError):
    """A file the harness wrote and reads back (a run summary, records, the score database, a checkpoint, a table
    index) is truncated, garbage or of the wrong kind; the message names it and what to do."""


class RunFolderBusy(StateFileError):
    """Another live process holds the lock of a run folder (:func:`harness.storage.hold_run`): it runs that seed."""


class ArchParseError(HarnessError, ValueError):
    """An architecture string cannot be parsed; the message names the bad token."""


class OutOfDomainError(HarnessError, KeyError):
    """A benchmark was asked about an architecture or fidelity it does not contain."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class EstimatorError(HarnessError):
    """An estimator failed on one architecture. The loop records it as a failed evaluation and goes on."""


class ServiceUnavailable(HarnessError):
    """A service a run needs (the score database) stayed unreachable after retries: a fault of the machinery, never
    a result. The loop records no evaluation for it; the run stops with every finished evaluation kept, and the
    same command resumes it."""


class RunAborted(HarnessError):
    """Too many evaluations in a row failed: the estimator is broken for this setting, not one architecture."""


#: a password in a URL: ``scheme://user:PASSWORD@`` or a ``password=`` parameter (libpq reads both)
_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^/@\s]*@|([?&]password=)[^&\s,]*")


def redacted(url: str) -> str:
    """``url`` (or any text) with every password in it replaced by ``***``."""
    return _PASSWORD.sub(lambda m: f"{m[1]}***@" if m[1] else f"{m[2]}***", url)


def refuse_password(text: str) -> None:
    """Raise :class:`ConfigError` if ``text`` (a setting, a command-line argument) holds a URL
    with a password: the run would write it into its files (``summary.json``, ``.hydra/*.yaml``) and logs."""
    if _PASSWORD.search(text):
        raise ConfigError(
            f"{redacted(text)} holds a password, which the run would write into its files and logs: leave it out "
            "of the URL and give it in the PGPASSWORD environment variable or ~/.pgpass, which PostgreSQL's client "
            "reads"
        )
