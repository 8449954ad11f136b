"""What the quota command found, for people and for machines: :class:`QuotaResult`, its aligned
text table (:meth:`~QuotaResult.table`), its JSON document (:meth:`~QuotaResult.document`) and
its exit code (:attr:`~QuotaResult.exit_code`: 0 every quota within the margin,
:data:`~pyspark_experiments.jobs.run.EXIT_QUOTA_NEAR` (3) one near its limit,
:data:`~pyspark_experiments.jobs.run.EXIT_QUOTA_OVER` (4) one over it).

Example::

    >>> row = usage_row("experiment", "runs_per_experiment", "1", "alpha", None, None, 9, 10, "near")
    >>> result = QuotaResult("sqlite:///m.db", "store", QuotaLimits(runs_per_experiment=10), 0.8, 10, [row],
    ...                      {"near": 1, "ok": 4}, runs=9, experiments=1)
    >>> result.exit_code, result.status
    (3, 'near')
    >>> print(result.table().splitlines()[1])
    experiment  quota                used  limit  percent  level  run
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ..analytics.quota import NEAR, OK, OVER, QuotaLimits
from ..jobs.run import EXIT_OK, EXIT_QUOTA_NEAR, EXIT_QUOTA_OVER

#: The levels, most urgent first.
LEVELS = (OVER, NEAR, OK)
#: The keys of each row of the JSON document's ``usage`` list, always all present.
ROW_KEYS = ("scope", "quota", "experiment_id", "experiment_name", "run_id", "run_name", "used", "limit", "usage",
            "percent", "level")
#: The exit code of each level.
EXIT_CODE_OF = {OVER: EXIT_QUOTA_OVER, NEAR: EXIT_QUOTA_NEAR, OK: EXIT_OK}


def usage_row(scope: str, quota: str, experiment_id: str | None, experiment_name: str | None, run_id: str | None,
              run_name: str | None, used: int, limit: int, level: str) -> dict:
    """One row of usage, with every key of :data:`ROW_KEYS` (``usage`` = used / limit,
    ``percent`` the same in percent, rounded to 2 places).

    Example::

        >>> usage_row("run", "params_per_run", "1", "alpha", "r1", "first", 3, 2, "over")["percent"]
        150.0
    """
    return {"scope": scope, "quota": quota, "experiment_id": experiment_id, "experiment_name": experiment_name,
            "run_id": run_id, "run_name": run_name, "used": int(used), "limit": int(limit), "usage": used / limit,
            "percent": round(100.0 * used / limit, 2), "level": level}


def row_order(row: dict) -> tuple:
    """The order rows are listed in: usage first (highest first), then quota, experiment, run
    (experiment quotas before run quotas at the same usage).

    Example::

        >>> [r["quota"] for r in sorted([usage_row("run", "tags_per_run", "1", None, "r", None, 1, 10, "ok"),
        ...                               usage_row("experiment", "runs_per_experiment", "1", None, None, None, 5, 10, "ok")],
        ...                              key=row_order)]
        ['runs_per_experiment', 'tags_per_run']
    """
    return (-row["usage"], row["quota"], row["experiment_id"] or "", row["run_id"] or "")


@dataclass
class QuotaResult:
    """The usage the quota command measured: ``rows`` (every experiment's quotas and the
    ``top`` heaviest runs of each run quota, :func:`usage_row` dicts), ``counts`` (rows at each
    level over *every* run and experiment, listed or not), and how many runs and experiments
    were counted. ``as_json`` makes :meth:`summary` the JSON document.

    Example::

        >>> QuotaResult("s", "store", QuotaLimits(), 0.8, 10, [], {"ok": 5}, runs=1, experiments=1).exit_code
        0
    """

    source: str
    read_from: str
    limits: QuotaLimits
    margin: float
    top: int
    rows: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    experiments: int = 0
    as_json: bool = False
    elapsed_s: float = 0.0

    @property
    def status(self) -> str:
        """The most urgent level of any row, listed or not: ``over``, ``near`` or ``ok``."""
        return next((level for level in LEVELS if self.counts.get(level, 0)), OK)

    @property
    def exit_code(self) -> int:
        """0 when every quota is within the margin, 3 when one is near its limit and none over,
        4 when one is over its limit."""
        return EXIT_CODE_OF[self.status]

    def not_listed(self) -> dict[str, int]:
        """``{"over": n, "near": n}``: the rows at each level that :attr:`rows` leaves out
        (runs beyond the ``top`` of their quota).

        Example::

            >>> QuotaResult("s", "store", QuotaLimits(), 0.8, 0, [], {"over": 2}).not_listed()
            {'over': 2, 'near': 0}
        """
        listed = {level: sum(1 for row in self.rows if row["level"] == level) for level in (OVER, NEAR)}
        return {level: max(0, self.counts.get(level, 0) - listed[level]) for level in (OVER, NEAR)}

    def document(self) -> dict:
        """The JSON document of ``--json``: always the same keys (``rows`` under ``usage``, each
        with :data:`ROW_KEYS`).

        Example::

            >>> sorted(QuotaResult("s", "store", QuotaLimits(), 0.8, 10).document())[:6]
            ['command', 'counts', 'elapsed_s', 'exit_code', 'experiments', 'limits']
        """
        return {
            "command": "quota", "status": self.status, "exit_code": self.exit_code, "source": self.source,
            "read_from": self.read_from, "margin": self.margin, "limits": dataclasses.asdict(self.limits),
            "runs": self.runs, "experiments": self.experiments, "top": self.top,
            "counts": {level: self.counts.get(level, 0) for level in LEVELS}, "not_listed": self.not_listed(),
            "usage": [{key: row[key] for key in ROW_KEYS} for row in sorted(self.rows, key=row_order)],
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def table(self) -> str:
        """The report for people: a headline, the rows as an aligned table (most used first),
        what was left out, and the exit code's meaning.

        Example::

            >>> print(QuotaResult("s", "store", QuotaLimits(), 0.8, 10, [], {"ok": 2}, runs=1, experiments=1).table())
            pyspark-experiments quota: OK in 0.0 s: 0 over, 0 near a limit (margin 80%); 1 runs in 1 experiments of s
            (no usage to list)
            the 10 heaviest runs of each run quota listed
            exit code 0: every quota below 80% of its limit
        """
        counts = {level: self.counts.get(level, 0) for level in LEVELS}
        lines = [f"pyspark-experiments quota: {self.status.upper()} in {self.elapsed_s:.1f} s: {counts[OVER]:,} over, "
                 f"{counts[NEAR]:,} near a limit (margin {100 * self.margin:g}%); {self.runs:,} runs in {self.experiments:,} "
                 f"experiments of {self.source}"]
        header = ("experiment", "quota", "used", "limit", "percent", "level", "run")
        cells = [(row["experiment_name"] or row["experiment_id"] or "", row["quota"], f"{row['used']:,}", f"{row['limit']:,}",
                  f"{row['percent']:.1f}%", row["level"], " ".join(filter(None, (row["run_id"], row["run_name"]))))
                 for row in sorted(self.rows, key=row_order)]
        if cells:
            widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
            numeric = {2, 3, 4}
            for line in [header, *cells]:
                text = "  ".join(value.rjust(widths[i]) if i in numeric else value.ljust(widths[i])
                                 for i, value in enumerate(line[:-1]))
                lines.append((text + "  " + line[-1]).rstrip())
        else:
            lines.append("(no usage to list)")
        lines.append(f"the {self.top} heaviest runs of each run quota listed" if self.top else "no run listed (--top 0)")
        hidden = self.not_listed()
        if any(hidden.values()):
            lines.append(f"not listed: {hidden[OVER]:,} over and {hidden[NEAR]:,} near a limit (raise --top to see them)")
        margin = f"{100 * self.margin:g}%"
        meaning = {OK: f"every quota below {margin} of its limit",
                   NEAR: f"a quota near its limit (at {margin} of it or more), none over",
                   OVER: "a quota over its limit"}[self.status]
        lines.append(f"exit code {self.exit_code}: {meaning}")
        return "\n".join(lines)

    def summary(self) -> str:
        """What the command prints on stdout: the JSON document (``as_json``) or the table."""
        if self.as_json:
            return json.dumps(self.document(), indent=2, sort_keys=True)
        return self.table()
