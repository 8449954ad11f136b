"""A history of GenAI traces at explicit times, written by the real mlflow client, for the
trace analytics' tests.

:func:`log_trace_history` writes the same traces into any tracking URI. Every time is explicit
(``mlflow.start_span_no_context(start_time_ns=...)``, ``span.end(end_time_ns=...)``), so
periods and latencies are the same on every store; only the assessments' creation times depend
on the store (a SQLite store keeps the ``create_time_ms`` given, a file store the wall clock,
and an override is always the wall clock).

- experiment ``agent-prod``: 40 traces over twelve days from Thursday 2026-10-29 (UTC), across
  a month and two week boundaries; experiment ``agent-eval``: 10 traces over the same days.
- each trace: a root ``AGENT`` span named ``answer``, ``summarize`` or ``route`` (the trace
  name), a ``retrieve`` span, and one of four shapes of LLM calls:

  - ``single``: one ``chat`` (``CHAT_MODEL``) span with token usage, a model, a provider, and
    a cost (always for ``gpt-x``, every other time for ``claude-y``);
  - ``rollup``: a ``plan`` span carrying the sum of the usage of its two ``chat`` calls (as
    agent frameworks report it), no cost of its own, its calls on two models;
  - ``wrapped``: a ``chat`` span whose inner ``openai.chat`` (``LLM``) span reports the same
    call again (two autologgers at once);
  - ``none``: a ``classify`` (``TOOL``) span, no tokens at all.

- users ``ann``, ``bo``, ``cy`` or none; sessions ``<user>-<n>`` or none; about one trace in
  seven ends in ``ERROR`` (its root span's status); latencies from 40 ms to several seconds.
- assessments: boolean feedback ``correct`` (some overridden with ``mlflow.override_feedback``),
  numeric feedback ``relevance`` (some holding an error instead of a value), an expectation
  ``expected_facts`` and string feedback ``notes``.

Example::

    >>> ids = log_trace_history("sqlite:////tmp/h/mlflow.db", "/tmp/h/artifacts")
    >>> sorted(ids), len(ids["agent-prod"])
    (['agent-eval', 'agent-prod'], 40)
"""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest

from support.stores import mlflow_tracking_uri

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"

__all__ = ["HISTORY_EXPERIMENTS", "log_trace_history", "trace_history_file_store", "trace_history_sqlite_store"]

#: Experiment name -> number of traces.
HISTORY_EXPERIMENTS = {"agent-prod": 40, "agent-eval": 10}
#: The first day of the history: a Thursday, three days before a month and a week begin.
FIRST_DAY = dt.datetime(2026, 10, 29, tzinfo=dt.UTC)
DAYS = 12
MODELS = (("gpt-x", "openai", 1e-6, 2e-6), ("claude-y", "anthropic", 3e-6, 1.5e-5))
SHAPES = ("single", "single", "rollup", "wrapped", "none")
USERS = ("ann", "bo", "cy", None)

_MS = 1_000_000  # nanoseconds


def _usage(rng: random.Random) -> dict:
    prompt, completion = rng.randint(5, 900), rng.randint(1, 400)
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


def _cost(model: tuple, usage: dict) -> dict:
    _, _, per_input, per_output = model
    return {"input_cost": usage["input_tokens"] * per_input, "output_cost": usage["output_tokens"] * per_output,
            "total_cost": usage["input_tokens"] * per_input + usage["output_tokens"] * per_output}


def _chat(mlflow, parent, name: str, start: int, rng: random.Random, *, model: tuple, priced: bool, span_type: str,
          usage: dict | None = None) -> tuple[int, dict]:
    """A model call span under ``parent`` from ``start`` (ns); returns its end and its usage."""
    usage = usage or _usage(rng)
    span = mlflow.start_span_no_context(name, span_type=span_type, parent_span=parent, start_time_ns=start,
                                        inputs={"messages": [{"role": "user", "content": "q"}]})
    attributes = {"mlflow.chat.tokenUsage": usage, "mlflow.llm.model": model[0], "mlflow.llm.provider": model[1]}
    if priced:
        attributes["mlflow.llm.cost"] = _cost(model, usage)
    span.set_attributes(attributes)
    end = start + rng.randint(30, 2500) * _MS
    span.end(outputs={"content": "a"}, end_time_ns=end)
    return end, usage


def _log_trace(mlflow, experiment_id: str, start: int, rng: random.Random, *, name: str, user, session, shape: str,
               failed: bool) -> str:
    from mlflow.entities import SpanType

    metadata = {}
    if user:
        metadata["mlflow.trace.user"] = user
    if session:
        metadata["mlflow.trace.session"] = session
    root = mlflow.start_span_no_context(name, span_type=SpanType.AGENT, experiment_id=experiment_id, start_time_ns=start,
                                        inputs={"question": f"q-{start}"}, metadata=metadata)
    retrieve = mlflow.start_span_no_context("retrieve", span_type=SpanType.RETRIEVER, parent_span=root,
                                            start_time_ns=start + _MS)
    at = start + _MS + rng.randint(5, 400) * _MS
    retrieve.end(outputs=[{"page_content": "p"}], end_time_ns=at)
    model = rng.choice(MODELS)
    priced = model[0] == "gpt-x" or rng.random() < 0.5
    if shape == "single":
        at, _ = _chat(mlflow, root, "chat", at, rng, model=model, priced=priced, span_type=SpanType.CHAT_MODEL)
    elif shape == "rollup":
        plan = mlflow.start_span_no_context("plan", span_type=SpanType.AGENT, parent_span=root, start_time_ns=at)
        first_end, first = _chat(mlflow, plan, "chat", at + _MS, rng, model=MODELS[0], priced=True,
                                 span_type=SpanType.CHAT_MODEL)
        at, second = _chat(mlflow, plan, "chat", first_end, rng, model=MODELS[1], priced=True,
                           span_type=SpanType.CHAT_MODEL)
        plan.set_attribute("mlflow.chat.tokenUsage", {key: first[key] + second[key] for key in first})
        plan.end(end_time_ns=at)
    elif shape == "wrapped":
        outer = mlflow.start_span_no_context("chat", span_type=SpanType.CHAT_MODEL, parent_span=root, start_time_ns=at)
        inner_end, usage = _chat(mlflow, outer, "openai.chat", at + _MS, rng, model=MODELS[0], priced=True,
                                 span_type=SpanType.LLM)
        outer.set_attributes({"mlflow.chat.tokenUsage": usage, "mlflow.llm.model": MODELS[0][0]})
        at = inner_end + _MS
        outer.end(end_time_ns=at)
    else:
        tool = mlflow.start_span_no_context("classify", span_type=SpanType.TOOL, parent_span=root, start_time_ns=at)
        at += rng.randint(1, 60) * _MS
        tool.end(outputs="faq", end_time_ns=at)
    # A long tail: most traces end soon after their last call, a few wait seconds more.
    at += int(rng.expovariate(1 / 300) * _MS)
    root.end(outputs="answer", status="ERROR" if failed else "OK", end_time_ns=at)
    return root.trace_id


def _assess(mlflow, trace_id: str, start_ms: int, rng: random.Random) -> None:
    from mlflow.entities import AssessmentError, AssessmentSource, Expectation, Feedback

    human = AssessmentSource(source_type="HUMAN", source_id="reviewer@example.com")
    judge = AssessmentSource(source_type="LLM_JUDGE", source_id="judge-v2")
    later = start_ms + rng.randint(1, 20) * 3_600_000  # hours later: some land on the next day
    if rng.random() < 0.8:
        correct = mlflow.log_assessment(trace_id, Feedback(name="correct", value=rng.random() < 0.7, source=human,
                                                           create_time_ms=later))
        if rng.random() < 0.2:
            mlflow.override_feedback(trace_id=trace_id, assessment_id=correct.assessment_id,
                                     value=not correct.value, rationale="second look", source=human)
    if rng.random() < 0.15:
        mlflow.log_assessment(trace_id, Feedback(name="relevance", source=judge, create_time_ms=later,
                                                 error=AssessmentError(error_code="RATE_LIMITED",
                                                                       error_message="judge unavailable")))
    elif rng.random() < 0.85:
        mlflow.log_assessment(trace_id, Feedback(name="relevance", value=round(rng.random(), 3), source=judge,
                                                 create_time_ms=later))
    if rng.random() < 0.3:
        mlflow.log_assessment(trace_id, Expectation(name="expected_facts", value=["arrow", "batches"], source=human,
                                                    create_time_ms=later))
    if rng.random() < 0.2:
        mlflow.log_assessment(trace_id, Feedback(name="notes", value="too long", source=human, create_time_ms=later))


def log_trace_history(tracking_uri: str, artifact_root: str | None = None) -> dict[str, list[str]]:
    """Write the trace history into ``tracking_uri``; return ``{experiment name: [trace ids]}``.

    ``artifact_root``: a folder for the experiments' artifacts (SQL stores otherwise put them
    in ``./mlruns`` of the working directory).
    """
    import mlflow
    from mlflow import MlflowClient

    rng = random.Random(20261208)
    ids: dict[str, list[str]] = {}
    first_ns = int(FIRST_DAY.timestamp()) * 1_000_000_000
    with mlflow_tracking_uri(tracking_uri):
        client = MlflowClient(tracking_uri)
        for name, count in HISTORY_EXPERIMENTS.items():
            location = None if artifact_root is None else os.path.join(artifact_root, name)
            experiment_id = client.create_experiment(name, artifact_location=location)
            ids[name] = []
            for _ in range(count):
                start = first_ns + rng.randrange(DAYS * 86_400_000) * _MS
                user = rng.choice(USERS)
                session = f"{user or 'anon'}-{rng.randint(1, 3)}" if rng.random() < 0.8 else None
                trace_id = _log_trace(mlflow, experiment_id, start, rng, name=rng.choice(("answer", "answer", "summarize", "route")),
                                      user=user, session=session, shape=rng.choice(SHAPES), failed=rng.random() < 0.15)
                _assess(mlflow, trace_id, start // _MS, rng)
                ids[name].append(trace_id)
    return ids


@pytest.fixture(scope="session")
def trace_history_sqlite_store(tmp_path_factory):
    """``(uri, {experiment name: [trace ids]})``: a SQLite store holding the trace history."""
    folder = tmp_path_factory.mktemp("trace-history-sqlite")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return uri, log_trace_history(uri, str(folder / "artifacts"))


@pytest.fixture(scope="session")
def trace_history_file_store(tmp_path_factory):
    """``(root, {experiment name: [trace ids]})``: a file store (``mlruns/``) holding the trace history."""
    root = tmp_path_factory.mktemp("trace-history-file") / "mlruns"
    return str(root), log_trace_history(str(root))
