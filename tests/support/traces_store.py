"""Reference GenAI traces, written by the real mlflow client, for the trace tables' tests.

:func:`log_trace_data` writes the same kind of content into any tracking URI (SQLite, file
store, PostgreSQL, a tracking server):

- experiment ``traces-alpha``:

  - ``answer``: a ``@mlflow.trace`` function calling a nested ``mlflow.start_span`` retriever
    and an LLM-style ``CHAT_MODEL`` span carrying the attributes MLflow's autologgers set
    (``mlflow.chat.tokenUsage``, ``mlflow.llm.model``, ``mlflow.llm.provider``,
    ``mlflow.llm.cost``), a session and a user (``mlflow.update_current_trace``); on its trace:
    boolean feedback, numeric feedback on a span, feedback with an error, an expectation,
    an override of the boolean feedback, and two tags set after the fact
    (``MlflowClient.set_trace_tag``), one of them a JSON string.
  - ``answer`` called a second time with other token counts and a ``ünïcødé`` question.
  - ``failing``: a traced function that raises (state ``ERROR``, an exception event).
  - ``doomed``: a trace deleted with ``MlflowClient.delete_traces``.

- experiment ``traces-beta``: one plain trace, ``solo``, with a dict output and a multi-line
  string feedback.

Trace times are the wall clock (MLflow takes no explicit time for traced calls): compare
each store with what mlflow answers for that same store, not stores with each other.
Trace writes are made synchronous (``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false``).

Example::

    >>> ids = log_trace_data("sqlite:////tmp/t/mlflow.db")
    >>> sorted(ids)
    ['answer', 'answer-2', 'doomed', 'failing', 'solo']
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from support.stores import mlflow_tracking_uri

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"

__all__ = [
    "TRACE_EXPERIMENTS",
    "log_trace_data",
    "trace_file_server",
    "trace_file_store",
    "trace_mysql_store",
    "trace_postgres_store",
    "trace_server",
    "trace_sqlite_store",
]

TRACE_EXPERIMENTS = ("traces-alpha", "traces-beta")

#: The token usage the two ``answer`` traces' CHAT_MODEL spans report.
TOKEN_USAGE = (
    {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42},
    {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12},
)


def log_trace_data(tracking_uri: str, artifact_root: str | None = None) -> dict[str, str]:
    """Write the reference traces into ``tracking_uri``; return ``{label: trace_id}``.

    ``artifact_root``: a folder for the experiments' artifacts (SQL stores otherwise put them
    in ``./mlruns`` of the working directory). The deleted trace's id is returned too (label
    ``doomed``), so a test can check it is gone.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import AssessmentError, AssessmentSource, SpanType

    ids: dict[str, str] = {}
    with mlflow_tracking_uri(tracking_uri):
        client = MlflowClient(tracking_uri)
        locations = {name: None if artifact_root is None else os.path.join(artifact_root, name)
                     for name in TRACE_EXPERIMENTS}
        alpha = client.create_experiment("traces-alpha", artifact_location=locations["traces-alpha"])
        beta = client.create_experiment("traces-beta", artifact_location=locations["traces-beta"])

        @mlflow.trace(name="answer", span_type=SpanType.AGENT)
        def answer(question: str, usage: dict) -> str:
            mlflow.update_current_trace(session_id="session-1", user="dana",
                                        tags={"app": "qa"}, metadata={"release": "r7"})
            with mlflow.start_span(name="retrieve", span_type=SpanType.RETRIEVER) as retriever:
                retriever.set_inputs({"query": question})
                retriever.set_outputs([{"page_content": "Spark reads Arrow", "metadata": {"id": 3}}])
                retriever.set_attribute("top_k", 3)
            with mlflow.start_span(name="chat", span_type=SpanType.CHAT_MODEL) as chat:
                chat.set_inputs({"messages": [{"role": "user", "content": question}], "model": "gpt-x"})
                chat.set_attributes({
                    "mlflow.chat.tokenUsage": usage,
                    "mlflow.llm.model": "gpt-x",
                    "mlflow.llm.provider": "openai",
                    "mlflow.llm.cost": {"input_cost": usage["input_tokens"] * 1e-6,
                                        "output_cost": usage["output_tokens"] * 2e-6,
                                        "total_cost": usage["input_tokens"] * 1e-6 + usage["output_tokens"] * 2e-6},
                    "temperature": 0.2,
                })
                chat.set_outputs({"choices": [{"message": {"role": "assistant", "content": "Arrow."}}]})
            return "Arrow."

        mlflow.set_experiment(experiment_id=alpha)
        answer("How does Spark read?", TOKEN_USAGE[0])
        ids["answer"] = mlflow.get_last_active_trace_id()
        answer("Wie liest Spark ünïcødé?\nZweite Zeile", TOKEN_USAGE[1])
        ids["answer-2"] = mlflow.get_last_active_trace_id()

        @mlflow.trace(name="failing")
        def failing(x: int) -> int:
            raise ValueError(f"bad input {x}")

        with contextlib.suppress(ValueError):
            failing(3)
        ids["failing"] = mlflow.get_last_active_trace_id()

        with mlflow.start_span(name="doomed") as span:
            span.set_inputs({"x": 1})
        ids["doomed"] = mlflow.get_last_active_trace_id()

        mlflow.set_experiment(experiment_id=beta)
        with mlflow.start_span(name="solo", span_type=SpanType.CHAIN) as span:
            span.set_inputs("plain text input")
            span.set_outputs({"answer": 42, "nested": {"ok": True}})
        ids["solo"] = mlflow.get_last_active_trace_id()

        trace_id = ids["answer"]
        trace = client.get_trace(trace_id)
        chat_span = next(s for s in trace.data.spans if s.name == "chat")
        human = AssessmentSource(source_type="HUMAN", source_id="reviewer@example.com")
        judged = mlflow.log_feedback(trace_id=trace_id, name="correct", value=True, source=human,
                                     rationale="matches the docs", metadata={"round": "1"})
        mlflow.log_feedback(trace_id=trace_id, name="relevance", value=0.75, span_id=chat_span.span_id,
                            source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-v1"))
        mlflow.log_feedback(trace_id=trace_id, name="safety",
                            error=AssessmentError(error_code="RATE_LIMITED", error_message="judge unavailable"),
                            source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-v1"))
        mlflow.log_expectation(trace_id=trace_id, name="expected_answer",
                               value={"text": "Arrow.", "facts": ["arrow", "batches"]}, source=human)
        mlflow.override_feedback(trace_id=trace_id, assessment_id=judged.assessment_id, value=False,
                                 rationale="second look", source=human)
        mlflow.log_feedback(trace_id=ids["solo"], name="notes", value="line one\nline two", source=human)
        client.set_trace_tag(trace_id, "reviewed", "yes")
        client.set_trace_tag(trace_id, "team.owner", json.dumps({"name": "ml"}))
        client.delete_traces(experiment_id=alpha, trace_ids=[ids["doomed"]])
    return ids


@pytest.fixture(scope="session")
def trace_sqlite_store(tmp_path_factory):
    """``(uri, {label: trace_id})``: a SQLite store holding the reference traces."""
    folder = tmp_path_factory.mktemp("traces-sqlite")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, log_trace_data(uri, str(folder / "artifacts"))


@pytest.fixture(scope="session")
def trace_file_store(tmp_path_factory):
    """``(root, {label: trace_id})``: a file store (``mlruns/``) holding the reference traces."""
    root = tmp_path_factory.mktemp("traces-file") / "mlruns"
    return str(root), log_trace_data(str(root))


@pytest.fixture(scope="session")
def trace_postgres_store(postgres_server, tmp_path_factory):
    """``(uri, {label: trace_id})``: a PostgreSQL store (``postgres_server`` of
    :mod:`support.stores`) holding the reference traces."""
    from support.postgres import create_database

    folder = tmp_path_factory.mktemp("traces-postgres")
    uri = create_database(*postgres_server, "mlflow_traces")
    return uri, log_trace_data(uri, str(folder / "artifacts"))


@pytest.fixture(scope="session")
def trace_mysql_store(mysql_server, tmp_path_factory):
    """``(uri, {label: trace_id})``: a MariaDB store (``mysql_server`` of :mod:`support.stores`)
    holding the reference traces."""
    from support.mysql import create_database

    folder = tmp_path_factory.mktemp("traces-mysql")
    uri = create_database(*mysql_server, "mlflow_traces")
    return uri, log_trace_data(uri, str(folder / "artifacts"))


@pytest.fixture(scope="session")
def trace_server(tmp_path_factory):
    """``(url, {label: trace_id})``: a real ``mlflow server`` over SQLite holding the
    reference traces, logged through it."""
    from support.mlflow_server import running_mlflow_server

    folder = tmp_path_factory.mktemp("traces-server")
    with running_mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", str(folder)) as url:
        yield url, log_trace_data(url)


@pytest.fixture(scope="session")
def trace_file_server(tmp_path_factory):
    """``(url, {label: trace_id})``: a real ``mlflow server`` over a file store: its traces keep
    their spans as ``traces.json`` artifacts (served under ``mlflow-artifacts:/``), not in the
    tracking store."""
    from support.mlflow_server import running_mlflow_server

    folder = tmp_path_factory.mktemp("traces-file-server")
    with running_mlflow_server(str(folder / "mlruns"), str(folder), env={"MLFLOW_ALLOW_FILE_STORE": "true"}) as url:
        yield url, log_trace_data(url)
