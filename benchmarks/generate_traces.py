"""Write large MLflow 3 GenAI trace stores fast, in MLflow's exact SQL format (SQLite, PostgreSQL).

Real mlflow creates each store (schema, migrations, experiments ``traces-000``, ...) and logs a
handful of template traces for real into ``<out>/templates/mlflow.db``: ``@mlflow.trace`` agents
whose nested ``mlflow.start_span`` spans include ``CHAT_MODEL`` spans carrying token usage
(``mlflow.chat.tokenUsage``), a model, a provider and a cost (``mlflow.llm.cost``), with tags,
a session and a user, a failing tool (state ``ERROR``) and ``mlflow.log_feedback`` assessments.
Their rows (``trace_info``, ``trace_tags``, ``trace_request_metadata``, ``spans``,
``assessments``) are then replicated in bulk with new ids, times spread over days, varied
durations, token counts and questions: ``executemany`` for SQLite, ``COPY`` for PostgreSQL,
secondary indexes dropped during the insert and recreated with mlflow's own SQL.
MLflow 3.18 leaves ``trace_metrics`` and ``span_metrics`` empty when it logs traces, and so
does the generator.

Every trace is a pure function of ``(seed, index)`` (:func:`trace_data`), so ``--check``
recomputes any sampled trace and compares it with ``MlflowClient.get_trace`` and
``MlflowClient.search_traces``.

Usage::

    python -m benchmarks.generate_traces --size L --kind both --out benchmarks/.stores/traces-L
    python -m benchmarks.generate_traces --traces 500 --spans 6 --kind sqlite --out /tmp/traces
    python -m benchmarks.generate_traces --check --out benchmarks/.stores/traces-L

Layout of ``--out``: ``templates/mlflow.db`` (the template traces), ``mlflow.db`` (SQLite
store), ``postgres/`` (the PostgreSQL server's data, started again on a free loopback port
whenever the store is used: :func:`store_uris`) and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass

from benchmarks.generate_store import (
    BASE_MS,
    USERS,
    create_experiments,
    drop_secondary_indexes,
    mlflow_env,
    recreate_indexes,
)
from benchmarks.trace_templates import INPUT_PRICE, OUTPUT_PRICE, QUESTION, Template, load_templates, log_templates

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY_MS = 86_400_000
#: Named sizes: L is the benchmark's (100,000 traces x 10 spans = 1M spans).
SIZES = {
    "tiny": dict(traces=50, spans=10, experiments=2, days=3),
    "S": dict(traces=5_000, spans=10, experiments=4, days=10),
    "L": dict(traces=100_000, spans=10, experiments=4, days=30),
}
KINDS = ("sqlite", "postgres")
#: The mlflow tables the generator fills, in foreign-key order.
TABLES = ("trace_info", "trace_tags", "trace_request_metadata", "spans", "assessments")


@dataclass(frozen=True)
class TraceSpec:
    """What to generate. Every trace follows from ``(seed, index)``."""

    traces: int = 5_000
    #: Spans per trace (root, a retriever, then CHAT_MODEL and TOOL spans in turn); at least 4.
    spans: int = 10
    experiments: int = 4
    #: Days the request times spread over, from 2024-01-01 UTC.
    days: int = 10
    seed: int = 0
    #: Share of traces whose last tool fails (state ERROR).
    error_rate: float = 0.03

    def experiment_of(self, index: int) -> int:
        return index % self.experiments


# -- what each trace holds ---------------------------------------------------------------------


@dataclass
class TraceData:
    """One generated trace as the generator writes it and as mlflow must read it back."""

    index: int
    trace_id: str
    experiment: int
    template: str
    name: str
    state: str
    question: str
    session_id: str
    user: str
    start_ns: int
    end_ns: int
    #: per span: span_id, parent_id, name, start_ns, end_ns, usage (or None), cost (or None)
    spans: list[dict]
    #: name -> (assessment_id, value, span_id or None, created_ms)
    assessments: dict[str, tuple]

    @property
    def request_ms(self) -> int:
        return self.start_ns // 1_000_000

    @property
    def duration_ms(self) -> int:
        return self.end_ns // 1_000_000 - self.request_ms


def trace_data(spec: TraceSpec, index: int) -> TraceData:
    """The content of trace ``index``: deterministic in ``(spec.seed, index)``.

    Example::

        >>> a, b = trace_data(TraceSpec(traces=10), 3), trace_data(TraceSpec(traces=10), 3)
        >>> a == b, len(a.spans), a.trace_id.startswith("tr-")
        (True, 10, True)
    """
    rng = random.Random(spec.seed * 1_000_003 + index)
    trace_id = f"tr-{rng.getrandbits(128):032x}"
    failed = rng.random() < spec.error_rate
    name = "qa_agent" if failed or rng.random() < 0.6 else "support_agent"
    gap_ms = max(1, spec.days * DAY_MS // max(1, spec.traces))
    start_ns = (BASE_MS + index * gap_ms + rng.randrange(gap_ms)) * 1_000_000 + rng.randrange(1_000_000)
    # Latencies of a chat agent: a long tail (median about 1.6 s, p99 about 10 s).
    duration_ns = int((150 + rng.lognormvariate(7.2, 0.75)) * 1_000_000) + rng.randrange(1_000_000)
    end_ns = start_ns + duration_ns
    spans = [dict(span_id=f"{rng.getrandbits(64):016x}", parent_id=None, name=name, start_ns=start_ns,
                  end_ns=end_ns, usage=None, cost=None)]
    children = spec.spans - 1
    slot = duration_ns // children
    for k in range(children):
        start = start_ns + k * slot + rng.randrange(max(1, slot // 10))
        end = start + max(1, int(slot * rng.uniform(0.5, 0.85)))
        usage = cost = None
        kind = "retrieve" if k == 0 else ("chat" if (k - 1) % 2 == 0 else "tool")
        child_name = "retrieve" if k == 0 else f"{kind}_{(k - 1) // 2}"
        if kind == "chat":
            tokens_in, tokens_out = rng.randint(50, 2_000), rng.randint(10, 500)
            usage = {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
            cost = {"input_cost": tokens_in * INPUT_PRICE, "output_cost": tokens_out * OUTPUT_PRICE}
            cost["total_cost"] = cost["input_cost"] + cost["output_cost"]
        spans.append(dict(span_id=f"{rng.getrandbits(64):016x}", parent_id=spans[0]["span_id"], name=child_name,
                          start_ns=start, end_ns=end, usage=usage, cost=cost))
    created_ms = end_ns // 1_000_000 + rng.randrange(1_000, 3_600_000)
    first_chat = next((s["span_id"] for s in spans if s["usage"]), None)
    assessments = {"correct": (f"a-{rng.getrandbits(128):032x}", rng.random() < 0.8, None, created_ms)}
    if index % 2 == 0:
        assessments["relevance"] = (f"a-{rng.getrandbits(128):032x}", round(rng.random(), 3), first_chat,
                                    created_ms + 1)
    state = "ERROR" if failed else "OK"
    return TraceData(
        index=index, trace_id=trace_id, experiment=spec.experiment_of(index), template=f"{name}/{state}",
        name=name, state=state, question=f"question {index} about topic {index % 97}",
        session_id=f"session-{index // 4:07d}", user=USERS[index % len(USERS)], start_ns=start_ns, end_ns=end_ns,
        spans=spans, assessments=assessments)


def trace_totals(trace: TraceData) -> tuple[dict, dict]:
    """The trace's token usage and cost, as mlflow aggregates its spans' (its own functions).

    Example::

        >>> usage, cost = trace_totals(trace_data(TraceSpec(traces=10), 0))
        >>> usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], cost["total_cost"] > 0
        (True, True)
    """
    from mlflow.tracing.utils import (
        SpanAggregationNode,
        aggregate_cost_from_span_nodes,
        aggregate_usage_from_span_nodes,
    )

    def nodes(key):
        return [SpanAggregationNode(span_id=s["span_id"], parent_id=s["parent_id"], data=s[key]) for s in trace.spans]

    return aggregate_usage_from_span_nodes(nodes("usage")) or {}, aggregate_cost_from_span_nodes(nodes("cost")) or {}


def _b64(hex_id: str | None) -> str | None:
    return None if hex_id is None else base64.b64encode(bytes.fromhex(hex_id)).decode()


def trace_rows(trace: TraceData, template: Template, experiment: dict) -> dict[str, list[dict]]:
    """Rows of every mlflow table for ``trace``: the template's, with the trace's own values.

    Example::

        >>> rows = trace_rows(trace_data(spec, 0), templates["qa_agent/OK"], experiments[0])  # doctest: +SKIP
        >>> {table: len(found) for table, found in rows.items()}  # doctest: +SKIP
        {'trace_info': 1, 'trace_tags': 3, 'trace_request_metadata': 14, 'spans': 10, 'assessments': 2}
    """
    trace_id, experiment_id = trace.trace_id, int(experiment["id"])
    inputs = json.dumps({"question": trace.question})
    usage, cost = trace_totals(trace)
    info = dict(template.info, request_id=trace_id, experiment_id=experiment_id, timestamp_ms=trace.request_ms,
                execution_time_ms=trace.duration_ms, request_preview=inputs, session_id=trace.session_id,
                **{k: usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens")},
                **{k: cost.get(k) for k in ("input_cost", "output_cost", "total_cost")})
    spans, sizes = [], []
    trace_b64 = _b64(trace_id[3:])
    for span, (row, content) in zip(trace.spans, template.spans):
        attributes = dict(content["attributes"], **{"mlflow.traceRequestId": json.dumps(trace_id)})
        if "mlflow.spanInputs" in attributes:
            attributes["mlflow.spanInputs"] = attributes["mlflow.spanInputs"].replace(QUESTION, trace.question)
        if span["usage"]:
            attributes["mlflow.chat.tokenUsage"] = json.dumps(span["usage"])
            attributes["mlflow.llm.cost"] = json.dumps(span["cost"])
        events = [dict(event, time_unix_nano=span["end_ns"] - (content["end_time_unix_nano"] - event["time_unix_nano"]))
                  for event in content["events"]]
        text = json.dumps(dict(content, trace_id=trace_b64, span_id=_b64(span["span_id"]),
                               parent_span_id=_b64(span["parent_id"]), start_time_unix_nano=span["start_ns"],
                               end_time_unix_nano=span["end_ns"], events=events, attributes=attributes),
                          ensure_ascii=False)
        sizes.append(len(text.encode()))
        spans.append({k: v for k, v in row.items() if k != "duration_ns"} | dict(
            trace_id=trace_id, experiment_id=experiment_id, span_id=span["span_id"], parent_span_id=span["parent_id"],
            start_time_unix_nano=span["start_ns"], end_time_unix_nano=span["end_ns"], content=text,
            **{k: (span["cost"] or {}).get(k) for k in ("input_cost", "output_cost", "total_cost")}))
    metadata_values = {"mlflow.traceInputs": inputs, "mlflow.trace.user": trace.user,
                       **_size_metadata(sizes, template.info_size)}
    tags = [dict(tag, request_id=trace_id) for tag in template.tags]
    for tag in tags:
        if tag["key"] == "mlflow.artifactLocation":
            tag["value"] = f"{experiment['artifact_location']}/traces/{trace_id}/artifacts"
    from mlflow.store.tracking.utils.trace_analytics import assessment_aggregate

    assessments = []
    for name, (assessment_id, value, span_id, created_ms) in trace.assessments.items():
        aggregate, numeric = assessment_aggregate(value)
        assessments.append(dict(template.assessments[name], assessment_id=assessment_id, trace_id=trace_id,
                                value=json.dumps(value), span_id=span_id, created_timestamp=created_ms,
                                last_updated_timestamp=created_ms, experiment_id=experiment_id,
                                trace_timestamp_ms=trace.request_ms, aggregate_value=aggregate,
                                is_numeric_value=numeric, valid=True))
    return {
        "trace_info": [info],
        "trace_tags": tags,
        "trace_request_metadata": [dict(m, request_id=trace_id, value=metadata_values.get(m["key"], m["value"]))
                                   for m in template.metadata],
        "spans": spans,
        "assessments": assessments,
    }


def _size_metadata(span_sizes: list[int], info_size: int) -> dict[str, str]:
    """``mlflow.trace.sizeBytes`` and ``sizeStats`` as mlflow computes them
    (``add_size_stats_to_trace_metadata``); the trace-info part is the template's."""
    from mlflow.tracing.utils import _calculate_percentile

    ordered = sorted(span_sizes)
    total = sum(span_sizes) + info_size + 2 * (len(span_sizes) - 1)
    stats = {"total_size_bytes": total, "num_spans": len(span_sizes), "max": ordered[-1],
             **{f"p{p}": int(_calculate_percentile(ordered, p / 100)) for p in (25, 50, 75)}}
    return {"mlflow.trace.sizeStats": json.dumps(stats), "mlflow.trace.sizeBytes": str(total)}


# -- writing -----------------------------------------------------------------------------------


class BulkWriter:
    """Bulk inserts into mlflow's trace tables: ``executemany`` (SQLite) or ``COPY`` (PostgreSQL),
    secondary indexes dropped while writing and recreated with their original SQL.

    Example::

        >>> writer = BulkWriter("sqlite", "sqlite:////tmp/traces/mlflow.db")  # doctest: +SKIP
        >>> writer.write(trace_rows(trace, template, experiment)); writer.close()  # doctest: +SKIP
    """

    def __init__(self, kind: str, uri: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.connection = sqlite3.connect(uri.split("sqlite:///", 1)[1])
            for pragma in ("synchronous = OFF", "journal_mode = MEMORY", "cache_size = -262144"):
                self.connection.execute(f"PRAGMA {pragma}")
            self.indexes = drop_secondary_indexes(self.connection, TABLES)
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            url = make_url(uri)
            self.connection = psycopg.connect(host=url.host, port=url.port, user=url.username,
                                              password=url.password, dbname=url.database)
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
                               "AND indexname NOT IN (SELECT conname FROM pg_constraint)", (list(TABLES),))
                self.indexes = cursor.fetchall()
                for name, _ in self.indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
            self.connection.commit()

    def write(self, rows: dict[str, list[dict]]) -> None:
        for table in TABLES:
            found = rows[table]
            if not found:
                continue
            columns = list(found[0])
            values = [tuple(row[c] for c in columns) for row in found]
            names = ", ".join(columns)
            if self.kind == "sqlite":
                self.connection.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", values)
            else:
                with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
        self.connection.commit()

    def close(self) -> None:
        if self.kind == "sqlite":
            recreate_indexes(self.connection, self.indexes)
        else:
            with self.connection.cursor() as cursor:
                for _, sql in self.indexes:
                    cursor.execute(sql)
                cursor.execute("ANALYZE")
            self.connection.commit()
        self.connection.close()


def write_store(kind: str, uri: str, spec: TraceSpec, templates: dict[str, Template], artifact_root: str,
                progress=print) -> list[dict]:
    """Create the store ``uri`` with real mlflow, then write the spec's traces; return its experiments.

    Example::

        >>> write_store("sqlite", "sqlite:////tmp/t/mlflow.db", TraceSpec(traces=50), templates, "/tmp/t/a")  # doctest: +SKIP
        [{'id': '1', 'artifact_location': '/tmp/t/a/1'}, ...]
    """
    started = time.perf_counter()
    experiments = create_experiments(uri, [f"traces-{e:03d}" for e in range(spec.experiments)], artifact_root)
    writer = BulkWriter(kind, uri)
    pending: dict[str, list] = {table: [] for table in TABLES}
    for index in range(spec.traces):
        trace = trace_data(spec, index)
        for table, rows in trace_rows(trace, templates[trace.template], experiments[trace.experiment]).items():
            pending[table].extend(rows)
        if len(pending["trace_info"]) >= 2_000 or index == spec.traces - 1:
            writer.write(pending)
            pending = {table: [] for table in TABLES}
        if index and index % 20_000 == 0:
            progress(f"  {kind}: {index:,} traces, {time.perf_counter() - started:.0f} s")
    writer.close()
    progress(f"  {kind}: {spec.traces:,} traces, {spec.traces * spec.spans:,} spans in "
             f"{time.perf_counter() - started:.1f} s")
    return experiments


# -- stores, manifest --------------------------------------------------------------------------

MANIFEST = "manifest.json"
PG_DATABASE = "mlflow_traces"


def load_manifest(out: str) -> dict:
    """The manifest :func:`generate` wrote in ``out``: the spec and each store's experiments.

    Example::

        >>> load_manifest("benchmarks/.stores/traces-L")["spec"]["traces"]  # doctest: +SKIP
        100000
    """
    with open(os.path.join(out, MANIFEST), encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def store_uris(out: str, kinds=KINDS):
    """Yield ``{kind: tracking URI}`` of the stores under ``out``; for ``postgres``, the server
    (``tests/support/postgres.py``) runs on ``<out>/postgres`` until the block ends.

    Example::

        >>> with store_uris("benchmarks/.stores/traces-L") as uris:  # doctest: +SKIP
        ...     uris["postgres"]
        'postgresql+psycopg://mlflow:...@127.0.0.1:41234/mlflow_traces'
    """
    out = os.path.abspath(out)
    uris = {}
    if "sqlite" in kinds:
        uris["sqlite"] = f"sqlite:///{os.path.join(out, 'mlflow.db')}"
    with contextlib.ExitStack() as stack:
        if "postgres" in kinds:
            if os.path.join(ROOT, "tests") not in sys.path:
                sys.path.insert(0, os.path.join(ROOT, "tests"))
            from support.postgres import running_postgres

            host, port, user, password = stack.enter_context(running_postgres(os.path.join(out, "postgres")))
            uris["postgres"] = f"postgresql+psycopg://{user}:{password}@{host}:{port}/{PG_DATABASE}"
        yield uris


def _create_pg_database(uri: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
            connection.execute(f'CREATE DATABASE "{url.database}"')


def generate(out: str, spec: TraceSpec, kinds=KINDS, force: bool = False, progress=print) -> dict:
    """Generate the stores of ``kinds`` under ``out`` and write its manifest; return the manifest.

    A store of the same spec already there is kept (unless ``force``); another spec is an error
    unless ``force``.

    Example::

        >>> generate("/tmp/traces", TraceSpec(traces=50, experiments=2, days=3), ("sqlite",))  # doctest: +SKIP
        {'spec': {...}, 'stores': {'sqlite': {'experiments': [...]}}}
    """
    os.makedirs(out, exist_ok=True)
    manifest = {"spec": asdict(spec), "stores": {}}
    if os.path.exists(os.path.join(out, MANIFEST)):
        old = load_manifest(out)
        if old["spec"] == asdict(spec) and not force:
            manifest = old
        elif not force:
            raise FileExistsError(f"{out} holds trace stores of another spec {old['spec']}; use --force")
        else:
            for name in ("mlflow.db", "postgres", "templates", "artifacts", MANIFEST):
                path = os.path.join(out, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
    template_db = os.path.join(out, "templates", "mlflow.db")
    if not os.path.exists(template_db):
        os.makedirs(os.path.dirname(template_db))
        log_templates(f"sqlite:///{template_db}", spec.spans, os.path.join(out, "templates", "artifacts"))
    templates = load_templates(template_db)
    todo = [kind for kind in kinds if kind not in manifest["stores"]]
    for kind in kinds:
        if kind not in todo:
            progress(f"  {kind}: already generated in {out}")
    if todo:
        with store_uris(out, todo) as uris:
            for kind in todo:
                if kind == "postgres":
                    _create_pg_database(uris[kind])
                experiments = write_store(kind, uris[kind], spec, templates,
                                          os.path.join(out, "artifacts", kind), progress)
                manifest["stores"][kind] = {"experiments": experiments}
                with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as handle:
                    json.dump(manifest, handle, indent=2)
    return manifest


# -- check -------------------------------------------------------------------------------------


def expected_view(trace: TraceData, experiment: dict) -> dict:
    """What mlflow's client must answer for ``trace`` (info, metadata, spans, assessments).

    Example::

        >>> view = expected_view(trace_data(TraceSpec(traces=10), 0), {"id": "1"})
        >>> view["experiment_id"], len(view["spans"]), view["state"] in ("OK", "ERROR")
        ('1', 10, True)
    """
    usage, cost = trace_totals(trace)
    return {
        "experiment_id": experiment["id"], "request_time": trace.request_ms,
        "execution_duration": trace.duration_ms, "state": trace.state, "trace_name": trace.name,
        "session": trace.session_id, "user": trace.user, "request_preview": json.dumps({"question": trace.question}),
        "token_usage": usage, "cost": cost,
        "spans": [(s["span_id"], s["parent_id"], s["name"], s["start_ns"], s["end_ns"], s["usage"])
                  for s in trace.spans],
        "assessments": sorted((a_id, name, value, span_id) for name, (a_id, value, span_id, _) in
                              trace.assessments.items()),
    }


def mlflow_view(info, spans=None) -> dict:
    """The same fields as :func:`expected_view`, from mlflow's ``TraceInfo`` (and spans).

    Example::

        >>> trace = MlflowClient(uri).get_trace(trace_id)  # doctest: +SKIP
        >>> mlflow_view(trace.info, trace.data.spans)["state"]  # doctest: +SKIP
        'OK'
    """
    metadata = info.trace_metadata
    view = {
        "experiment_id": info.trace_location.mlflow_experiment.experiment_id,
        "request_time": info.request_time, "execution_duration": info.execution_duration,
        "state": str(info.state.value if hasattr(info.state, "value") else info.state),
        "trace_name": info.tags.get("mlflow.traceName"), "session": metadata.get("mlflow.trace.session"),
        "user": metadata.get("mlflow.trace.user"), "request_preview": info.request_preview,
        "token_usage": json.loads(metadata.get("mlflow.trace.tokenUsage", "{}")),
        "cost": json.loads(metadata.get("mlflow.trace.cost", "{}")),
        "assessments": sorted((a.assessment_id, a.name, a.value, a.span_id) for a in info.assessments),
    }
    if spans is not None:
        view["spans"] = [(s.span_id, s.parent_id, s.name, s.start_time_ns, s.end_time_ns,
                          s.get_attribute("mlflow.chat.tokenUsage")) for s in sorted(spans, key=lambda s: s.start_time_ns)]
    return view


def check_store(uri: str, spec: TraceSpec, experiments: list[dict], sample: int = 5, seed: int = 1) -> list[str]:
    """Read a sample of traces (the first, the last, ``sample`` random ones) back through the real
    mlflow client, ``get_trace`` (with spans) and ``search_traces`` (by request time), and
    compare with what the generator meant to write. Returns the differences (empty: identical).

    Example::

        >>> check_store("sqlite:////tmp/traces/mlflow.db", TraceSpec(traces=50), experiments)  # doctest: +SKIP
        []
    """
    mlflow_env()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    rng = random.Random(seed)
    indices = sorted({0, spec.traces - 1, *rng.sample(range(spec.traces), min(sample, spec.traces))})
    problems = []
    for index in indices:
        trace = trace_data(spec, index)
        experiment = experiments[trace.experiment]
        want = expected_view(trace, experiment)
        where = f"{uri.split('@')[-1]}, trace {index} ({trace.trace_id})"
        got = client.get_trace(trace.trace_id)
        found = mlflow_view(got.info, got.data.spans)
        for key in want:
            if found.get(key) != want[key]:
                problems.append(f"{where}: get_trace {key} {found.get(key)!r} != expected {want[key]!r}")
        page = client.search_traces(locations=[experiment["id"]], include_spans=False, max_results=100,
                                    filter_string=f"trace.timestamp_ms = {trace.request_ms}")
        match = [t for t in page if t.info.trace_id == trace.trace_id]
        if not match:
            problems.append(f"{where}: search_traces does not find it")
            continue
        searched = mlflow_view(match[0].info)
        for key in searched:
            if searched[key] != want[key]:
                problems.append(f"{where}: search_traces {key} {searched[key]!r} != expected {want[key]!r}")
    return problems


def check(out: str, sample: int = 5, kinds=KINDS, progress=print) -> list[str]:
    """Check every store under ``out`` (see :func:`check_store`).

    Example::

        >>> check("benchmarks/.stores/traces-L", sample=20)  # doctest: +SKIP
        []
    """
    manifest = load_manifest(out)
    spec = TraceSpec(**manifest["spec"])
    kinds = [kind for kind in kinds if kind in manifest["stores"]]
    problems = []
    with store_uris(out, kinds) as uris:
        for kind in kinds:
            found = check_store(uris[kind], spec, manifest["stores"][kind]["experiments"], sample)
            progress(f"  check {kind}: {'OK' if not found else f'{len(found)} difference(s)'}")
            problems.extend(found)
    return problems


# -- command line ------------------------------------------------------------------------------


def spec_from_args(args) -> TraceSpec:
    """The :class:`TraceSpec` of parsed :func:`add_spec_arguments` flags: the named size, overridden.

    Example::

        >>> parser = argparse.ArgumentParser(); add_spec_arguments(parser)
        >>> spec_from_args(parser.parse_args(["--size", "L", "--traces", "1000"])).traces
        1000
    """
    base = dict(SIZES[args.size or "S"])
    for name in ("traces", "spans", "experiments", "days"):
        if getattr(args, name, None) is not None:
            base[name] = getattr(args, name)
    return TraceSpec(**base, seed=args.seed, error_rate=args.error_rate)


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that make a :class:`TraceSpec` (the generator's and the benchmark's)."""
    parser.add_argument("--size", choices=sorted(SIZES), help="a named size (default S); the flags below override it")
    parser.add_argument("--traces", type=int)
    parser.add_argument("--spans", type=int, help="spans per trace (at least 4)")
    parser.add_argument("--experiments", type=int)
    parser.add_argument("--days", type=int, help="days the request times spread over")
    parser.add_argument("--error-rate", type=float, default=TraceSpec.error_rate)
    parser.add_argument("--seed", type=int, default=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_spec_arguments(parser)
    parser.add_argument("--kind", choices=(*KINDS, "both"), default="both")
    parser.add_argument("--out", required=True, help="folder for the stores and manifest.json")
    parser.add_argument("--force", action="store_true", help="replace stores already in --out")
    parser.add_argument("--check", action="store_true", help="only check the stores in --out against mlflow's client")
    parser.add_argument("--sample", type=int, default=5, help="traces to check (plus the first and the last)")
    args = parser.parse_args(argv)
    kinds = KINDS if args.kind == "both" else (args.kind,)
    if args.check:
        problems = check(args.out, args.sample, kinds)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    spec = spec_from_args(args)
    if spec.spans < 4:
        parser.error("--spans must be at least 4 (a root, a retriever, a chat model and a tool)")
    print(f"generating {spec} into {args.out}")
    generate(args.out, spec, kinds, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
