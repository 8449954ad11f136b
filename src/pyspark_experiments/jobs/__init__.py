"""The job layer: what every command (``sync``, ``analytics``, ``report``, ``cleanup``) stands
on, so that they all behave the same.

- :mod:`.run`: exit codes, the outcome line, :func:`run_job`, the command's Spark session;
- :mod:`.failures`: the package's own error found inside Spark's wrapping of it;
- :mod:`.config`: the key table, TOML loading, :class:`CommandConfig` (the shared settings);
- :mod:`.flags`: the shared flags and the one ``KEY=VALUE`` parser;
- :mod:`.output`: logging and progress; :mod:`.hiding`: errors as a job prints them (every
  credential hidden by :mod:`pyspark_experiments.redact`);
- :mod:`.target` and :mod:`.lock`: the Delta target and the lock every writer of it takes.

Example::

    >>> from pyspark_experiments.jobs import EXIT_LOCKED, exit_code_for
    >>> from pyspark_experiments.errors import TargetLockedError
    >>> exit_code_for(TargetLockedError("another sync holds /d")) == EXIT_LOCKED
    True
"""

from .config import SHARED_LAYOUT, CommandConfig, Key, Layout, job_layout, load_config, parse_config, read_toml
from .failures import innermost_error, wrapped_error
from .flags import add_job_flags, hide_tracking_uri_flag, job_flag_values, key_values
from .hiding import short_error
from .output import LOG_LEVELS, Progress, setup_logging
from .run import (
    EXIT_CODES,
    EXIT_CODES_HELP,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_QUOTA_NEAR,
    EXIT_QUOTA_OVER,
    JobSettings,
    command_session,
    exit_code_for,
    job_session,
    outcome_line,
    run_job,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_CODES_HELP",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_QUOTA_NEAR",
    "EXIT_QUOTA_OVER",
    "LOG_LEVELS",
    "SHARED_LAYOUT",
    "CommandConfig",
    "JobSettings",
    "Key",
    "Layout",
    "Progress",
    "add_job_flags",
    "command_session",
    "exit_code_for",
    "hide_tracking_uri_flag",
    "innermost_error",
    "job_flag_values",
    "job_layout",
    "job_session",
    "key_values",
    "load_config",
    "outcome_line",
    "parse_config",
    "read_toml",
    "run_job",
    "setup_logging",
    "short_error",
    "wrapped_error",
]
