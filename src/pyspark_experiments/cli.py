"""The ``pyspark-experiments`` command: a registry of sub-commands.

Each command is a module with a ``main(argv) -> int``; adding one is one line in
:data:`COMMANDS`.

Example::

    $ pyspark-experiments demo
    $ pyspark-experiments sync --config conf/sync.toml
"""

from __future__ import annotations

import importlib
import sys

#: name -> (module with ``main(argv) -> int``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pyspark_experiments.demo", "read a tracking store (a sample one by default) into Delta and print a summary"),
    "sync": ("pyspark_experiments.sync.cli", "incrementally copy a tracking store into Delta tables"),
    "analytics": ("pyspark_experiments.analytics.cli", "compute run analytics into Delta tables next to the synced ones"),
    "report": ("pyspark_experiments.report.cli", "write one self-contained HTML report of a store or synced tables"),
    "quota": ("pyspark_experiments.quota.cli", "usage of the tracking quotas; exit 3 when one is near its limit, 4 over"),
    "cleanup": ("pyspark_experiments.cleanup.cli", "list runs to clean up; delete (--yes) or restore (--restore) them"),
}


def usage() -> str:
    """The command list.

    Example::

        >>> print(usage().splitlines()[0])
        usage: pyspark-experiments COMMAND [options]
    """
    width = max(len(name) for name in COMMANDS)
    lines = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return f"usage: pyspark-experiments COMMAND [options]\n\ncommands:\n{lines}"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command; returns the exit code (2 for an unknown command).

    Example::

        >>> main(["--help"])                                                  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        if argv:
            print(f"pyspark-experiments: unknown command {argv[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module, _ = COMMANDS[argv[0]]
    return importlib.import_module(module).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
