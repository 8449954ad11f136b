"""The ``pyspark-experiments`` command: ``demo`` and ``sync``.

Example::

    $ pyspark-experiments demo
    $ pyspark-experiments sync --config conf/sync.toml
"""

from __future__ import annotations

import sys

COMMANDS = {
    "demo": "read a tracking store (a sample one by default) into Delta and print a summary",
    "sync": "incrementally copy a tracking store into Delta tables",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command; returns the exit code.

    Example::

        >>> main(["demo", "--output", "/tmp/demo"])
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = "\n".join(f"  {name:<6} {text}" for name, text in COMMANDS.items())
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(f"usage: pyspark-experiments COMMAND [options]\n\ncommands:\n{usage}", file=sys.stdout if asked else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as run
    else:
        from .sync import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
