"""Every form MLflow keeps a trace in converts to the same rows (stores/traces/convert.py).

One difference is MLflow's own: an integer assessment value kept as a protobuf ``Value`` (the
file store's YAML, a server's JSON) is a double, so ``value`` reads ``3.0`` there and ``3`` from
a SQL store (``numeric_value`` is 3.0 on both).

The inputs are made by mlflow 3.18's own entities (``Span.to_dict`` / ``to_otel_proto``,
``TraceInfo.to_proto``, ``Assessment.to_dictionary``), not written by hand, so each form is
exactly what a store or server holds. The module's doctests run here too.
"""

from __future__ import annotations

import doctest
import importlib
import json
import sqlite3

import pyarrow as pa
import pytest

from pyspark_experiments import tables
from pyspark_experiments.stores.sql import traces as sql
from pyspark_experiments.stores.traces import convert, spans

MODULES = ["traces.convert", "traces.spans", "traces.artifact_spans", "traces.selection", "traces.reading",
           "sql.traces", "file.traces", "rest.traces"]

SPAN = {
    "trace_id": "TEfdOnXMuAadtP5S7o6cnw==", "span_id": "vYPzfi0x00U=", "parent_span_id": "gAgM87bL5yQ=",
    "name": "chat", "kind": "SPAN_KIND_INTERNAL",
    "start_time_unix_nano": 1796685698634983752, "end_time_unix_nano": 1796685698636237043,
    "events": [{"name": "exception", "time_unix_nano": 1796685698636237000,
                "attributes": {"exception.message": "boom", "n": 3}}],
    "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
    "attributes": {
        "mlflow.traceRequestId": '"tr-4c47dd3a75ccb8069db4fe52ee8e9c9f"', "mlflow.spanType": '"CHAT_MODEL"',
        "mlflow.chat.tokenUsage": '{"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}',
        "mlflow.llm.model": '"gpt-x"', "mlflow.llm.provider": '"openai"',
        "mlflow.llm.cost": '{"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75}',
        "mlflow.spanInputs": '{"q": "\\u00fc"}', "mlflow.spanOutputs": '"ok"',
        "top_k": "3", "flag": "true", "values": '[1, 2.5, "x"]',
    },
    "links": [],
}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"pyspark_experiments.stores.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no doctest examples"
    assert result.failed == 0


def _comparable(row: dict) -> dict:
    """Attribute and event values decoded: each form may spell the same JSON differently."""
    return row | {"attributes": {key: json.loads(value) for key, value in row["attributes"].items()},
                  "inputs": json.loads(row["inputs"]), "outputs": json.loads(row["outputs"]),
                  "events": json.loads(row["events"])}


def test_a_span_reads_the_same_from_its_dict_and_its_otel_protobuf_json():
    from google.protobuf.json_format import MessageToDict
    from mlflow.entities import Span

    span = Span.from_dict(SPAN)
    from_dict = spans.span_row(span.to_dict(), experiment_id="1", with_content=True)
    camel = MessageToDict(span.to_otel_proto())
    snake = MessageToDict(span.to_otel_proto(), preserving_proto_field_name=True)
    for proto_json in (camel, snake):
        from_proto = spans.span_row(proto_json, experiment_id="1", trace_id=span.trace_id, with_content=True)
        assert _comparable(from_proto) == _comparable(from_dict)
    assert from_dict["span_id"] == span.span_id and from_dict["parent_span_id"] == span.parent_id
    assert from_dict["trace_id"] == span.trace_id
    assert (from_dict["status"], from_dict["status_message"]) == ("ERROR", "boom")
    assert (from_dict["model_name"], from_dict["model_provider"], from_dict["cost"]) == ("gpt-x", "openai", 0.75)
    assert (from_dict["input_tokens"], from_dict["output_tokens"], from_dict["total_tokens"]) == (12, 3, 15)
    assert from_dict["start_time_ns"] == span.start_time_ns and from_dict["start_time"] == span.start_time_ns // 1000
    assert from_dict["duration_ms"] == pytest.approx((span.end_time_ns - span.start_time_ns) / 1e6)
    assert json.loads(from_dict["inputs"]) == span.inputs == {"q": "ü"}
    assert set(from_dict["attributes"]) == set(span.attributes) - {"mlflow.spanInputs", "mlflow.spanOutputs"}


def test_a_span_written_by_mlflow_3_5_with_hex_ids_reads_the_same():
    from mlflow.entities import Span

    span = Span.from_dict(SPAN)
    hex_form = SPAN | {"trace_id": span.trace_id, "span_id": span.span_id, "parent_span_id": span.parent_id}
    assert Span.from_dict(hex_form).span_id == span.span_id
    assert spans.span_row(hex_form, experiment_id="1") == spans.span_row(SPAN, experiment_id="1")


def test_a_trace_info_reads_the_same_from_server_json_file_store_dict_and_v2_dict():
    from google.protobuf.json_format import MessageToDict
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.entities.trace_info_v2 import TraceInfoV2

    info = TraceInfo(
        trace_id="tr-0123", trace_location=TraceLocation.from_experiment_id("7"), request_time=1_704_067_200_123,
        state=TraceState.OK, request_preview='{"q": 1}', response_preview='"a"', client_request_id="c-1",
        execution_duration=250,
        trace_metadata={"mlflow.trace.tokenUsage": json.dumps({"input_tokens": 5, "output_tokens": 6,
                                                                  "total_tokens": 11}),
                        "mlflow.trace.cost": json.dumps({"total_cost": 0.125}), "mlflow.trace.session": "s-9",
                        "mlflow.trace.user": "ann", "mlflow.sourceRun": "run-1"},
        tags={"mlflow.traceName": "qa", "team": "ml"},
    )
    server = convert.trace_from_json(MessageToDict(info.to_proto(), preserving_proto_field_name=True))
    file_dict = info.to_dict()
    tags, metadata = file_dict.pop("tags"), file_dict.pop("trace_metadata")
    file_store = convert.trace_from_json(file_dict, tags=tags, metadata=metadata)
    assert server == file_store
    assert server["request_time"] == info.request_time * 1000 and server["execution_duration_ms"] == 250
    assert (server["trace_name"], server["session_id"], server["user_id"], server["source_run_id"]) == (
        "qa", "s-9", "ann", "run-1")
    assert (server["input_tokens"], server["total_tokens"], server["total_cost"], server["input_cost"]) == (
        5, 11, 0.125, None)
    assert server["tags"] == info.tags and server["request_metadata"] == info.trace_metadata
    v2 = convert.trace_from_json(TraceInfoV2.from_v3(info).to_dict())
    for column in ("trace_id", "experiment_id", "request_time", "execution_duration_ms", "state", "trace_name",
                   "session_id", "input_tokens", "tags"):
        assert v2[column] == server[column], column


def test_assessments_read_the_same_from_their_dict_and_sql_row_forms():
    from mlflow.entities import AssessmentError, AssessmentSource, Expectation, Feedback
    from mlflow.store.tracking.dbmodels.models import SqlAssessments

    source = AssessmentSource(source_type="HUMAN", source_id="ann")
    made = [
        Feedback(name="ok", value=True, source=source, trace_id="tr-1", rationale="why", metadata={"k": "v"}),
        Feedback(name="score", value=3, source=source, trace_id="tr-1", span_id="00000000000000ab"),
        Feedback(name="judge", error=AssessmentError(error_code="E", error_message="m"), source=source,
                 trace_id="tr-1"),
        Expectation(name="facts", value=["a", {"b": 2}], source=source, trace_id="tr-1"),
        Expectation(name="answer", value="text", source=source, trace_id="tr-1"),
    ]
    for index, assessment in enumerate(made):
        assessment.assessment_id = f"a-{index}"
        from_dict = convert.assessment_from_json(assessment.to_dictionary(), "7")
        sql_row = SqlAssessments.from_mlflow_entity(assessment)
        columns = {column.name: getattr(sql_row, column.key) for column in SqlAssessments.__table__.columns}
        from_sql = convert.assessment_from_sql(columns, "7")
        # The dict form holds a protobuf Value, whose numbers are doubles: 3 comes back as 3.0.
        assert json.loads(from_dict["value"]) == json.loads(from_sql["value"]) == assessment.value
        assert from_dict | {"value": None} == from_sql | {
            "value": None, "create_time": from_dict["create_time"], "last_update_time": from_dict["last_update_time"]}
    rows = [convert.assessment_from_json(assessment.to_dictionary(), "7") for assessment in made]
    assert [(row["value_type"], row["numeric_value"]) for row in rows] == [
        ("boolean", 1.0), ("number", 3.0), ("null", None), ("array", None), ("string", None)]
    assert (rows[2]["error_code"], rows[2]["error_message"]) == ("E", "m")
    assert [row["assessment_type"] for row in rows] == ["feedback"] * 3 + ["expectation"] * 2


def test_batches_have_the_tables_exact_schemas():
    row = spans.span_row(SPAN, experiment_id="1", with_content=True)
    assert convert.spans_batch([row], with_content=True).schema == tables.spans_arrow_schema(True)
    plain = spans.span_row(SPAN, experiment_id="1")
    assert "inputs" not in plain and convert.spans_batch([plain]).schema == tables.spans_arrow_schema(False)
    trace = convert.trace_from_json({"trace_id": "t", "trace_location": {"mlflow_experiment": {"experiment_id": "1"}},
                                     "request_time": "2024-01-01T00:00:00Z", "state": "OK"})
    assert convert.traces_batch([trace]).schema == tables.arrow_schema("traces")
    batch = convert.traces_batch([trace])
    assert batch.column("request_time").cast(pa.int64()).to_pylist() == [1_704_067_200_000_000]


def test_trace_tables_are_values_of_the_table_option_but_not_synced():
    assert set(tables.TRACE_TABLE_NAMES) <= set(tables.ALL_TABLE_NAMES)
    assert set(tables.TRACE_TABLE_NAMES).isdisjoint(tables.TABLE_NAMES)
    assert tables.check_table("Spans") == "spans"
    assert tables.NATURAL_KEYS["spans"] == ("trace_id", "span_id")
    assert tables.spark_schema("traces").fieldNames()[:2] == ["trace_id", "experiment_id"]


def test_a_sql_store_without_trace_tables_reads_as_empty(tmp_path):
    connection = sqlite3.connect(tmp_path / "old.db")
    connection.execute("CREATE TABLE runs (run_uuid TEXT)")
    chosen = sql.TraceSelection(experiment_ids=("0",))
    assert sql.plan_trace_ids(connection, chosen) == []
    assert sql.read_traces(connection, ["tr-1"]).num_rows == 0
    assert sql.read_spans(connection, ["tr-1"], with_content=True).schema == tables.spans_arrow_schema(True)
    assert sql.read_assessments(connection, ["tr-1"]).num_rows == 0


def test_a_sql_error_other_than_a_missing_table_is_raised(tmp_path):
    connection = sqlite3.connect(tmp_path / "x.db")
    connection.close()
    with pytest.raises(sqlite3.ProgrammingError):
        sql.table_columns(connection, "trace_info")


def test_a_file_store_trace_whose_spans_are_not_local_is_an_error_naming_it(tmp_path):
    from pyspark_experiments.errors import UnsupportedStoreError
    from pyspark_experiments.stores.file import traces as files

    folder = tmp_path / "1" / "traces" / "tr-abc"
    (folder / "tags").mkdir(parents=True)
    (folder / "tags" / "mlflow.artifactLocation").write_text("s3://bucket/1/traces/tr-abc/artifacts")
    with pytest.raises(UnsupportedStoreError, match="trace tr-abc: its spans are at .s3://bucket"):
        list(files.iter_span_rows([("1", str(folder))]))
    (folder / "tags" / "mlflow.artifactLocation").write_text(f"file://{tmp_path}/elsewhere")
    assert files.spans_path(str(folder)) == f"{tmp_path}/elsewhere/traces.json"
