"""Metrics and traces, end to end: ``ingest load`` as a real process exporting OTLP/HTTP to
a real receiver, whose decoded numbers must match the rows in the database."""

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

from conftest import REPO, people, run_ingest, start_ingest, wait_until, write_records
from durable_ingest import __version__
from durable_ingest.telemetry import metrics as telemetry

pytestmark = pytest.mark.usefixtures("no_otel_env")


@pytest.fixture
def no_otel_env(monkeypatch):
    """No OTEL_* setting of the developer's shell leaks into the processes under test."""
    for var in [v for v in os.environ if v.startswith("OTEL_")]:
        monkeypatch.delenv(var)


# -- a real OTLP/HTTP receiver -------------------------------------------------------------
class Receiver:
    """Accepts POST /v1/metrics and /v1/traces on 127.0.0.1:<free port> and keeps the decoded
    requests, in arrival order. ``vanish_after_metrics=N`` stops listening after N exports:
    a collector that goes away in the middle of a load."""

    def __init__(self, vanish_after_metrics: int = 0):
        self.metrics: list = []
        self.traces: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/metrics":
                    receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                    reply = ExportMetricsServiceResponse()
                elif self.path == "/v1/traces":
                    receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                    reply = ExportTraceServiceResponse()
                else:
                    self.send_error(404)
                    return
                payload = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                if vanish_after_metrics and len(receiver.metrics) == vanish_after_metrics:
                    threading.Thread(target=receiver.close).start()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.server_close()

    def env(self, **extra) -> dict:
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_METRICS_EXPORTER": "otlp",
                **extra}

    # What arrived, decoded.
    def last_metrics(self) -> dict:
        """{instrument name: Metric} as of the last export that held it. Exports are
        cumulative, so the last one holds the totals."""
        latest = {}
        for request in self.metrics:
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        latest[metric.name] = metric
        return latest

    def totals(self, name: str) -> dict:
        """{attribute set: value} of a counter, from the last export."""
        metric = self.last_metrics().get(name)
        return point_totals([metric] if metric is not None else [])

    def totals_of_all_processes(self, name: str) -> dict:
        """{attribute set: value} of a counter summed over the processes that exported it
        (``service.instance.id``), each as of its last export."""
        latest = {}
        for request in self.metrics:
            for resource_metrics in request.resource_metrics:
                instance = dict(attributes(resource_metrics.resource.attributes)).get("service.instance.id")
                for scope in resource_metrics.scope_metrics:
                    latest.update({instance: m for m in scope.metrics if m.name == name})
        return point_totals(list(latest.values()))

    def resources(self) -> list:
        return [attributes(rm.resource.attributes) for r in self.metrics for rm in r.resource_metrics]

    def spans(self) -> list:
        return [(span.name, dict(attributes(span.attributes)), dict(attributes(rs.resource.attributes)))
                for request in self.traces for rs in request.resource_spans
                for scope in rs.scope_spans for span in scope.spans]


def point_totals(metrics: list) -> dict:
    totals: dict = {}
    for metric in metrics:
        for point in getattr(metric, metric.WhichOneof("data")).data_points:
            key = attributes(point.attributes)
            totals[key] = totals.get(key, 0) + (point.count if hasattr(point, "bucket_counts") else point.as_int)
    return totals


def attributes(key_values) -> tuple:
    def value(v):
        kind = v.WhichOneof("value")
        return getattr(v, kind) if kind else None

    return tuple(sorted((kv.key, value(kv.value)) for kv in key_values))


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary_of(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- metrics equal rows --------------------------------------------------------------------
SCENARIOS = {
    "fail-task": (120, ["--chunk-size", "25", "--fail-task", "50", "--fail-task", "51"]),
    "flaky": (150, ["--chunk-size", "40", "--flaky-rate", "0.3", "--seed", "7",
                    "--max-attempts", "3", "--backoff", "1"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exported_counters_equal_the_rows(backend, workdir, receiver, scenario):
    count, options = SCENARIOS[scenario]
    data = write_records(workdir / "users.json", people(count))
    env = {**backend.env(), **receiver.env(OTEL_SERVICE_NAME="ingest-under-test",
                                           OTEL_METRIC_EXPORT_INTERVAL="200")}

    result = run_ingest("load", data, "--json", "--retry-interval", "0.01", *options,
                        env=env, cwd=workdir)

    summary = summary_of(result)
    assert result.stderr == ""
    tasks, errors = backend.counts()
    assert (summary["tasks"], summary["errors"]) == (tasks, errors)
    assert tasks + errors == count and summary["retries"] > 0
    assert receiver.totals("ingest.db.operations") == {
        (("operation", "insert_task"),): tasks, (("operation", "insert_error"),): errors}
    assert receiver.totals("ingest.records") == {
        (("outcome", "task"),): tasks, (("outcome", "error"),): errors}
    assert sum(receiver.totals("ingest.transform.retries").values()) == summary["retries"]
    metrics = receiver.last_metrics()
    assert metrics["ingest.db.operations"].unit == "{operation}"
    assert metrics["ingest.db.operations"].sum.is_monotonic
    assert len(receiver.metrics) >= 2  # periodic exports, then the last one at exit
    for resource in receiver.resources():
        assert ("service.name", "ingest-under-test") in resource
        assert ("service.version", __version__) in resource
    # DBOS's spans arrive too, with the same resource.
    spans = receiver.spans()
    [run] = [s for s in spans if s[0] == "ingest_dataset"]
    assert run[1]["operationUUID"] == summary["run_id"]
    assert run[2]["service.name"] == "ingest-under-test"
    assert {"load_chunk", "write_chunk"} <= {s[0] for s in spans}


@pytest.mark.slow
def test_helpers_export_too_each_as_its_own_instance(postgres_backend, workdir, receiver, parking):
    """--workers 2 with keys: every process's counters reach the collector, and together they
    equal what the load did (inserted, updated, skipped)."""
    first = write_records(workdir / "a.ndjson", [{"id": i} for i in range(100)], "ndjson")
    second = write_records(workdir / "b.ndjson", [{"id": i} for i in range(50, 250)], "ndjson")
    env = {**postgres_backend.env(), **receiver.env(OTEL_METRIC_EXPORT_INTERVAL="200")}
    command = ("--json", "--key", "id", "--on-conflict", "update", "--chunk-size", "10",
               "--workers", "2")
    process = start_ingest("load", first, *command, env={**env, **parking.env()}, cwd=workdir)
    for executor in ("local", "local-helper-1"):  # the first load's helper loads a chunk too
        parking.wait_parked(executor=executor, process=process)
    parking.release()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    result = run_ingest("load", second, *command, env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr

    assert receiver.totals_of_all_processes("ingest.records") == {
        (("outcome", "task"),): 250, (("outcome", "updated"),): 50}
    assert receiver.totals_of_all_processes("ingest.db.operations") == {
        (("operation", "insert_task"),): 250, (("operation", "update_task"),): 50}
    instances = {dict(r).get("service.instance.id") for r in receiver.resources()}
    assert len(instances) >= 3  # two commands' processes, at least one helper among them


@pytest.mark.slow
def test_chunks_are_timed_and_every_span_carries_the_run_id(sqlite_backend, workdir, receiver):
    data = write_records(workdir / "users.json", people(60))

    result = run_ingest("load", data, "--json", "--chunk-size", "20", "--fail-task", "3",
                        "--retry-interval", "0.01", env={**sqlite_backend.env(), **receiver.env()},
                        cwd=workdir)

    summary = summary_of(result)
    assert receiver.totals("ingest.chunk.duration") == {(("committed", True),): summary["chunks"]}
    duration = receiver.last_metrics()["ingest.chunk.duration"]
    assert duration.unit == "s"
    assert tuple(duration.histogram.data_points[0].explicit_bounds) == telemetry.CHUNK_DURATION_BUCKETS
    in_flight = receiver.last_metrics()["ingest.records.in_flight"]
    assert not in_flight.sum.is_monotonic
    assert receiver.totals("ingest.records.in_flight") == {(): 0}  # all done
    spans = [s for s in receiver.spans() if s[1].get("operationUUID", "").startswith(summary["run_id"])]
    names = {s[0] for s in spans}
    assert {"ingest_dataset", "load_chunk", "write_chunk", "retry_records", "retry_round"} <= names
    assert {s[1].get(telemetry.RUN_ID_ATTRIBUTE) for s in spans} == {summary["run_id"]}


@pytest.mark.slow
def test_page_requests_are_counted_by_status_class_and_timed(sqlite_backend, workdir, receiver):
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from page_server import PageServer

    with PageServer(pages=3, records=5, script={1: [503], 2: [404]}) as server:
        result = run_ingest("load", server.page_url, "--pages", "1-3", "--json", "--concurrency", "1",
                            env={**sqlite_backend.env(), **receiver.env()}, cwd=workdir)
        requests = dict(server.statuses)

    assert result.returncode == 3, result.stderr
    assert requests == {503: 1, 404: 1, 200: 2}
    assert receiver.totals("ingest.http.requests") == {
        (("status_class", "2xx"),): 2, (("status_class", "4xx"),): 1, (("status_class", "5xx"),): 1}
    duration = receiver.last_metrics()["ingest.http.request.duration"]
    assert duration.unit == "s"
    assert sum(p.count for p in duration.histogram.data_points) == 4
    assert tuple(duration.histogram.data_points[0].explicit_bounds) == telemetry.REQUEST_DURATION_BUCKETS


# -- when there is no collector ------------------------------------------------------------
@pytest.mark.slow
def test_no_collector_one_warning_line_and_the_load_succeeds(sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(20))
    endpoint = f"http://127.0.0.1:{closed_port()}"

    result = run_ingest("load", data, "--json", env={
        **sqlite_backend.env(), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})

    assert summary_of(result)["tasks"] == 20
    [line] = result.stderr.splitlines()
    assert line.startswith(f"warning: no OTLP collector at {endpoint} (Connection refused); "
                           "metrics and traces are not exported.")


@pytest.mark.slow
def test_collector_going_away_mid_run_is_one_line_too(sqlite_backend, workdir):
    receiver = Receiver(vanish_after_metrics=1)
    data = write_records(workdir / "users.json", people(40))
    try:
        began = time.monotonic()
        result = run_ingest("load", data, "--json", "--chunk-size", "10", "--flaky-rate", "0.2",
                            "--retry-interval", "0.2", env={
                                **sqlite_backend.env(),
                                **receiver.env(OTEL_METRIC_EXPORT_INTERVAL="50")})
        took = time.monotonic() - began
    finally:
        receiver.close()

    assert summary_of(result)["tasks"] + summary_of(result)["errors"] == 40
    assert len(receiver.metrics) == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line == ("warning: telemetry export failed ([Errno 111] Connection refused); the load "
                    "goes on (further telemetry warnings are not shown)")
    assert took < 25


# -- the console exporter ------------------------------------------------------------------
@pytest.mark.slow
def test_console_exporter_prints_the_totals_once_on_stderr(sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(30))

    result = run_ingest("load", data, "--json", "--chunk-size", "10", "--fail-task", "7",
                        "--retry-interval", "0.01",
                        env={**sqlite_backend.env(), "OTEL_METRICS_EXPORTER": "console"})

    summary = summary_of(result)
    assert len(result.stdout.splitlines()) == 1  # --json output stays clean
    lines = result.stderr.splitlines()
    assert lines.count("metrics of durable-ingest " + __version__ + ":") == 1
    assert "  ingest.records{outcome=task} 29" in lines
    assert "  ingest.records{outcome=error} 1" in lines
    assert "  ingest.db.operations{operation=insert_task} 29" in lines
    assert f"  ingest.transform.retries {summary['retries']}" in lines
    assert sqlite_backend.counts() == (29, 1)


# -- Ctrl-C and kill ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_load_still_exports_what_it_committed(sqlite_backend, workdir, receiver, signum):
    """Stopped while task 3 waits for its retry: the last export, at exit, has the 49 rows."""
    data = write_records(workdir / "users.json", people(50))
    process = start_ingest(
        "load", data, "--chunk-size", "10", "--fail-task", "3", "--retry-interval", "60",
        env={**sqlite_backend.env(), **receiver.env(OTEL_METRIC_EXPORT_INTERVAL="100")},
        cwd=workdir,
        # As in a terminal: a background shell (CI) starts its children with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_until(lambda: receiver.totals("ingest.records") == {(("outcome", "task"),): 49}, 30,
               "an export of the 49 committed records", process=process)
    exports = len(receiver.metrics)
    process.send_signal(signum)
    # The export at exit is received before the process exits.
    wait_until(lambda: len(receiver.metrics) > exports, 30, "the export at exit", process=process)
    _, stderr = process.communicate(timeout=15)

    assert process.returncode == 130
    [line] = stderr.strip().splitlines()
    assert line.startswith("Error: interrupted: run ingest-") and "ingest resume ingest-" in line
    assert sqlite_backend.counts() == (49, 0)  # task 3's retry resumes on the next run
    assert receiver.totals("ingest.records") == {(("outcome", "task"),): 49}


# -- instruments, in process ---------------------------------------------------------------
def test_instruments_as_declared(monkeypatch):
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    telemetry.start(warn=pytest.fail, extra_readers=(reader,))
    try:
        telemetry.record_writes(tasks=5, errors=2, retries=3)
        with telemetry.chunk(7):
            in_flight = metric_points(reader)["ingest.records.in_flight"]
        with pytest.raises(RuntimeError), telemetry.chunk(4):
            raise RuntimeError("the chunk's transaction failed")
        telemetry.record_request("2xx", 0.02)
        telemetry.record_request("5xx", 0.3)
        telemetry.record_request("2xx", 0.01)
        points = metric_points(reader)
    finally:
        telemetry.stop()

    assert [p.value for p in in_flight.data.data_points] == [7]
    assert {m.name: (m.unit, m.description) for m in points.values()} == {
        name: (unit, description) for name, (_, unit, description) in telemetry.INSTRUMENTS.items()}
    durations = {dict(p.attributes)["committed"]: p for p in points["ingest.chunk.duration"].data.data_points}
    assert (durations[True].count, durations[False].count) == (1, 1)
    assert tuple(durations[True].explicit_bounds) == telemetry.CHUNK_DURATION_BUCKETS
    assert [p.value for p in points["ingest.records.in_flight"].data.data_points] == [0]
    requests = {dict(p.attributes)["status_class"]: p.value
                for p in points["ingest.http.requests"].data.data_points}
    assert requests == {"2xx": 2, "5xx": 1}
    latency = {dict(p.attributes)["status_class"]: p
               for p in points["ingest.http.request.duration"].data.data_points}
    assert (latency["2xx"].count, latency["2xx"].sum) == (2, pytest.approx(0.03))
    assert tuple(latency["5xx"].explicit_bounds) == telemetry.REQUEST_DURATION_BUCKETS
    assert telemetry._meters is None
    telemetry.record_writes(tasks=1)  # after stop: a no-op, not an error
    with telemetry.chunk(1):
        pass


def metric_points(reader) -> dict:
    data = reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_traces_follow_the_otlp_endpoint_and_opt_outs(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert telemetry.traces_endpoint() == "http://collector:4318/v1/traces"
    assert telemetry.metrics_endpoint() == "http://collector:4318/v1/metrics"
    assert telemetry.configured_exporters() == {"otlp"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/v1/traces")
    assert telemetry.traces_endpoint() == "http://other:4318/v1/traces"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert telemetry.traces_endpoint() is None
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp, console")
    assert telemetry.configured_exporters() == {"otlp", "console"}
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.configured_exporters() == set()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    assert telemetry.configured_exporters() == set()  # zero set-up: nothing exported
    assert telemetry.traces_endpoint() is None


def test_the_sdk_reads_service_name_and_metrics_endpoint(monkeypatch):
    assert telemetry.resource().attributes["service.name"] == "durable-ingest"
    assert telemetry.resource().attributes["service.version"] == __version__
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,deployment.environment=ci")
    assert telemetry.resource().attributes["service.name"] == "from-attributes"
    assert telemetry.resource().attributes["deployment.environment"] == "ci"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-service-name")  # wins, as the spec says
    assert telemetry.resource().attributes["service.name"] == "from-service-name"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:9999/custom")
    assert telemetry.metrics_endpoint() == "http://metrics:9999/custom"


def test_an_interval_the_sdk_refuses_is_one_warning(monkeypatch, receiver):
    # No traces: a global TracerProvider would outlive the test in this process.
    for name, value in receiver.env(OTEL_METRIC_EXPORT_INTERVAL="0", OTEL_TRACES_EXPORTER="none").items():
        monkeypatch.setenv(name, value)
    warnings = []

    telemetry.start(warn=warnings.append)
    telemetry.record_writes(tasks=2)
    telemetry.stop()

    assert warnings == ["warning: OTEL_METRIC_EXPORT_INTERVAL='0' is not a positive number of "
                        "milliseconds; using 60000"]
    assert receiver.totals("ingest.records") == {(("outcome", "task"),): 2}  # exported at stop
