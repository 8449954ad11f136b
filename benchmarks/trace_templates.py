"""The template traces of the trace store generator: logged for real by mlflow, then read back
as the rows mlflow wrote, for :mod:`benchmarks.generate_traces` to replicate.

Example::

    >>> log_templates("sqlite:////tmp/t/mlflow.db", spans=10, artifact_root="/tmp/t/artifacts")  # doctest: +SKIP
    >>> sorted(load_templates("/tmp/t/mlflow.db"))  # doctest: +SKIP
    ['qa_agent/ERROR', 'qa_agent/OK', 'support_agent/OK']
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass

from benchmarks.generate_store import USERS, create_experiments

#: Text the template traces carry where each generated trace puts its own.
QUESTION = "QUESTION"
TEMPLATE_USAGE = {"input_tokens": 111, "output_tokens": 22, "total_tokens": 133}
#: Price per token of the generated CHAT_MODEL spans (``mlflow.llm.cost``).
INPUT_PRICE, OUTPUT_PRICE = 2.5e-6, 1e-5


def log_templates(uri: str, spans: int, artifact_root: str) -> None:
    """Log the template traces for real into ``uri``: ``qa_agent`` and ``support_agent`` (state
    OK) and ``qa_agent`` whose last tool raises (state ERROR), each with ``spans`` spans and two
    feedbacks (``correct`` on the trace, ``relevance`` on its first CHAT_MODEL span)."""
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    import mlflow
    from mlflow.entities import AssessmentSource, SpanType

    [experiment] = create_experiments(uri, ["templates"], artifact_root)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=experiment["id"])
    cost = {"input_cost": 111 * INPUT_PRICE, "output_cost": 22 * OUTPUT_PRICE}
    cost["total_cost"] = cost["input_cost"] + cost["output_cost"]

    def chat(name: str) -> None:
        with mlflow.start_span(name=name, span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs({"messages": [{"role": "user", "content": QUESTION}], "model": "gpt-bench"})
            span.set_attributes({"mlflow.chat.tokenUsage": TEMPLATE_USAGE, "mlflow.llm.model": "gpt-bench",
                                 "mlflow.llm.provider": "openai", "mlflow.llm.cost": cost})
            span.set_outputs({"choices": [{"message": {"role": "assistant", "content": "ANSWER"}}]})

    def tool(name: str, fail: bool) -> None:
        with mlflow.start_span(name=name, span_type=SpanType.TOOL) as span:
            span.set_inputs({"query": QUESTION})
            if fail:
                raise RuntimeError("tool failed")
            span.set_outputs({"rows": 3})

    def agent(name: str, fail: bool):
        @mlflow.trace(name=name, span_type=SpanType.AGENT)
        def run(question: str) -> str:
            mlflow.update_current_trace(session_id="session-0", user=USERS[0], tags={"app": "bench"},
                                        metadata={"release": "r1"})
            with mlflow.start_span(name="retrieve", span_type=SpanType.RETRIEVER) as span:
                span.set_inputs({"query": question})
                span.set_outputs([{"page_content": "doc", "metadata": {"id": 1}}])
            for k in range(spans - 2):
                if k % 2 == 0:
                    chat(f"chat_{k // 2}")
                else:
                    tool(f"tool_{k // 2}", fail and k == spans - 3)
            return "ANSWER"
        return run

    try:
        for name, fail in (("qa_agent", False), ("support_agent", False), ("qa_agent", True)):
            with contextlib.suppress(RuntimeError):
                agent(name, fail)(QUESTION)
            trace_id = mlflow.get_last_active_trace_id()
            first_chat = next(s for s in mlflow.get_trace(trace_id).data.spans if s.span_type == SpanType.CHAT_MODEL)
            mlflow.log_feedback(trace_id=trace_id, name="correct", value=True,
                                source=AssessmentSource(source_type="HUMAN", source_id="reviewer@example.com"))
            mlflow.log_feedback(trace_id=trace_id, name="relevance", value=0.5, span_id=first_chat.span_id,
                                rationale="judged on the answer",
                                source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-v1"))
    finally:
        mlflow.set_tracking_uri(previous)


@dataclass
class Template:
    """One template trace's rows, as mlflow wrote them (dicts by column name)."""

    info: dict
    tags: list[dict]
    metadata: list[dict]
    #: ``(row, parsed content)`` of each span, by start time (the root first).
    spans: list[tuple[dict, dict]]
    #: assessment name -> row
    assessments: dict[str, dict]
    #: The trace-info part of mlflow's ``mlflow.trace.sizeStats`` total (the rest is the spans').
    info_size: int


def load_templates(path: str) -> dict[str, Template]:
    """The template traces of ``path`` by ``"<name>/<state>"``, with a check that their span
    content re-serializes byte for byte as mlflow wrote it."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row

    def rows(sql: str, *params) -> list[dict]:
        return [dict(row) for row in connection.execute(sql, params)]

    templates = {}
    for info in rows("SELECT * FROM trace_info ORDER BY timestamp_ms"):
        trace_id = info["request_id"]
        spans = []
        for row in rows("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time_unix_nano", trace_id):
            content = json.loads(row["content"])
            if json.dumps(content, ensure_ascii=False) != row["content"]:
                raise AssertionError(f"span content of template {trace_id} does not re-serialize as mlflow wrote it")
            spans.append((row, content))
        metadata = rows("SELECT * FROM trace_request_metadata WHERE request_id = ?", trace_id)
        stats = json.loads(next(m["value"] for m in metadata if m["key"] == "mlflow.trace.sizeStats"))
        span_bytes = sum(len(row["content"].encode()) for row, _ in spans) + 2 * (len(spans) - 1)
        templates[f"{info['trace_name']}/{info['status']}"] = Template(
            info=info, tags=rows("SELECT * FROM trace_tags WHERE request_id = ?", trace_id), metadata=metadata,
            spans=spans, info_size=stats["total_size_bytes"] - span_bytes,
            assessments={a["name"]: a for a in rows("SELECT * FROM assessments WHERE trace_id = ?", trace_id)})
    connection.close()
    return templates
