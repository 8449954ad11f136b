"""ReadRequest.from_options: every option, case-insensitivity, errors that name option and values."""

from __future__ import annotations

import pytest

from pyspark_experiments.datasource import OPTIONS, ReadRequest
from pyspark_experiments.errors import ConfigurationError

URI = "sqlite:////tmp/none.db"


def request(**options) -> ReadRequest:
    return ReadRequest.from_options({"trackingUri": URI, **options}, environ={})


def test_defaults():
    r = request()
    assert (r.table, r.view_type, r.mode, r.experiments, r.run_ids, r.metric_keys) == (
        "runs", "ACTIVE_ONLY", "FAILFAST", None, None, None)
    assert (r.min_start_time_ms, r.partition_size, r.num_partitions, r.metric_ranges, r.max_rows_per_trigger) == (
        None, None, None, None, None)
    assert r.uri.location == URI


def test_every_option_is_parsed():
    r = ReadRequest.from_options(
        {
            "trackingUri": "/tmp/mlruns", "table": "Metrics", "viewType": "deleted_only", "metricKeys": "loss, val/acc",
            "runIds": "a,b", "startTimeAfter": "2024-01-01T00:00:00Z", "partitionSize": "10", "numPartitions": "3",
            "mode": "permissive", "metricRanges": '{"a": {"loss": [0, 64]}}', "maxRowsPerTrigger": "500",
            "path": "1, 2",
        },
        environ={},
    )
    assert r.uri.kind == "file" and r.table == "metrics" and r.view_type == "DELETED_ONLY"
    assert r.metric_keys == ("loss", "val/acc") and r.run_ids == ("a", "b") and r.experiments == ("1", "2")
    assert r.min_start_time_ms == 1_704_067_200_000
    assert (r.partition_size, r.num_partitions, r.mode, r.max_rows_per_trigger) == (10, 3, "PERMISSIVE", 500)
    assert r.metric_ranges == (("a", "loss", 0, 64),)


def test_option_names_are_case_insensitive():
    # Spark lower-cases option names; users may write any case.
    lower = ReadRequest.from_options({k.lower(): v for k, v in {"trackingUri": URI, "viewType": "ALL"}.items()}, environ={})
    upper = ReadRequest.from_options({"TRACKINGURI": URI, "VIEWTYPE": "all"}, environ={})
    assert lower == upper and upper.view_type == "ALL"


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"bogus": "1"}, "unknown option(s) 'bogus' for format 'experiments'; valid options: " + ", ".join(OPTIONS)),
        ({"table": "metricz"}, "option 'table': unknown table 'metricz'; expected one of runs, metrics, params, tags, experiments, inputs"),
        ({"viewType": "SOME"}, "option 'viewType': unknown value 'SOME'; expected one of ACTIVE_ONLY, DELETED_ONLY, ALL"),
        ({"mode": "LENIENT"}, "option 'mode': unknown value 'LENIENT'; expected one of FAILFAST, PERMISSIVE"),
        ({"numPartitions": "0"}, "option 'numPartitions': expected a positive integer, got '0'"),
        ({"partitionSize": "many"}, "option 'partitionSize': expected a positive integer, got 'many'"),
        ({"maxRowsPerTrigger": "-5"}, "option 'maxRowsPerTrigger': expected a positive integer"),
        ({"startTimeAfter": "yesterday"}, "option 'startTimeAfter': expected an ISO-8601 time"),
        ({"metricRanges": "[1]"}, "option 'metricRanges': expected JSON {run_id: {metric key: [after, upto]}}"),
        ({"trackingUri": "ftp://host/x"}, "unsupported tracking URI scheme 'ftp'"),
        ({"paths": "['a', 'b']"}, "format 'experiments' takes one load path"),
    ],
)
def test_bad_options_name_the_option_and_the_valid_values(options, expected):
    with pytest.raises(ConfigurationError) as error:
        request(**options)
    assert expected in str(error.value)
    assert isinstance(error.value, ValueError)  # existing `except ValueError` keeps working


def test_lists_drop_blanks_and_spaces():
    assert request(path=" a , ,b ").experiments == ("a", "b")
    assert request(path=" , ").experiments is None
    assert request(runIds=" r1 ,, r2").run_ids == ("r1", "r2")


@pytest.mark.parametrize("option", ["runIds", "metricKeys"])
@pytest.mark.parametrize("value", ["", " , "])
def test_a_filter_that_names_nothing_is_an_error_not_everything(option, value):
    with pytest.raises(ConfigurationError) as error:
        request(**{option: value})
    assert f"option {option!r}" in str(error.value) and "names none" in str(error.value)


def test_start_time_forms():
    assert request(startTimeAfter="1704067200000").min_start_time_ms == 1_704_067_200_000
    assert request(startTimeAfter="2024-01-01T01:00:00+01:00").min_start_time_ms == 1_704_067_200_000
    assert request(startTimeAfter="2024-01-01").min_start_time_ms == 1_704_067_200_000  # UTC when no zone


def test_trace_options_are_parsed():
    r = request(table="Spans", traceStates="error, ok", traceIds="tr-1,tr-2", withSpanContent="TRUE",
                startTimeAfter="2024-01-01T00:00:00Z", startTimeBefore="1704153600000", partitionSize="50")
    assert (r.table, r.trace_states, r.trace_ids, r.with_span_content) == ("spans", ("ERROR", "OK"), ("tr-1", "tr-2"), True)
    assert (r.min_start_time_ms, r.max_start_time_ms, r.partition_size) == (1_704_067_200_000, 1_704_153_600_000, 50)
    assert r.schema.fieldNames()[-3:] == ["inputs", "outputs", "events"]
    assert "inputs" not in request(table="spans").schema.fieldNames()
    assert request(table="traces").schema.fieldNames()[:3] == ["trace_id", "experiment_id", "request_time"]


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"traceIds": "tr-1"}, "option 'traceIds' only applies to tables traces, spans, assessments"),
        ({"table": "runs", "startTimeBefore": "0"}, "option 'startTimeBefore' only applies to tables traces"),
        ({"table": "models", "traceStates": "OK"}, "option 'traceStates' does not apply to table 'models'"),
        ({"table": "traces", "runIds": "r"}, "option 'runIds' does not apply to table 'traces'; options that do: "),
        ({"table": "assessments", "withSpanContent": "true"}, "option 'withSpanContent' does not apply to table"),
        ({"table": "traces", "traceStates": "DONE"},
         "option 'traceStates': unknown value 'DONE'; expected one of OK, ERROR, IN_PROGRESS"),
        ({"table": "traces", "traceIds": " , "}, "option 'traceIds': expected trace ids separated by commas"),
        ({"table": "spans", "startTimeBefore": "tomorrow"}, "option 'startTimeBefore': expected an ISO-8601 time"),
        ({"table": "spans", "withSpanContent": "yes"}, "option 'withSpanContent': expected true or false"),
        ({"table": "spans", "withSpanContent": "true", "columnNameOfCorruptRecord": "_bad"},
         "options 'withSpanContent' and 'columnNameOfCorruptRecord' cannot be combined"),
    ],
)
def test_bad_trace_options_name_the_option(options, expected):
    with pytest.raises(ConfigurationError) as error:
        request(**options)
    assert expected in str(error.value)
