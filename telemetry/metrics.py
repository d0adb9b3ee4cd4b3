"""OpenTelemetry metrics of a load (and DBOS's traces), configured by the standard ``OTEL_*``
variables.

Instruments (meter ``durable_ingest``; through the collector's Prometheus exporter dots
become underscores, counters get ``_total`` and the unit ``s`` adds ``_seconds``):

- ``ingest.db.operations`` (counter, ``{operation}``): rows written, ``operation`` =
  ``insert_task`` | ``insert_error`` (the original demo's counter) | ``update_task`` (``--key
  --on-conflict update``);
- ``ingest.records`` (counter, ``{record}``): records finished, ``outcome`` = ``task`` |
  ``error`` | ``updated`` | ``skipped`` (the transform returned None, or ``--key``'s key
  was already stored) | ``redriven``;
- ``ingest.transform.retries`` (counter, ``{retry}``): transform attempts after the first;
- ``ingest.chunk.duration`` (histogram, ``s``, buckets 10 ms to 60 s): how long a chunk took
  in this process, ``committed`` = ``true`` | ``false`` (false: it raised);
- ``ingest.records.in_flight`` (up-down counter, ``{record}``): records of the chunks this
  process is working on right now.

The counters are exactly once: ``record_writes`` runs when a transaction commits, in the
process that committed it, so workflow replays never count twice. The chunk duration and
in-flight records describe the work of this process and are observed per execution
(``chunk``): a chunk replayed after a crash is observed again, briefly.

Exporters come from ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console``, both (``otlp,console``)
or ``none``. Unset, it is ``otlp`` when an OTLP endpoint is configured and ``none``
otherwise, so a zero-set-up run prints nothing extra. ``console`` prints the totals to
stderr once, when the command ends.

The OpenTelemetry SDK reads the rest of the standard variables itself: the OTLP/HTTP
exporter its endpoint (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, else
``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/metrics``), headers and timeout; the periodic reader
its interval (``OTEL_METRIC_EXPORT_INTERVAL`` ms, default 60000; the last values are also
exported when the command ends); the resource ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``, over our defaults ``service.name=durable-ingest`` and
``service.version``. This module adds what the SDK does not do: the choice of exporters,
the reachability check, condensed warnings, the console summary and the run ID on spans.

Traces: with an OTLP endpoint DBOS sends a span per workflow and step to
``traces_endpoint()`` (``OTEL_TRACES_EXPORTER=none`` turns them off). ``start`` gives them
the same resource, and a span inherits ``ingest.run_id`` (set by ``tag_run``) from its
parent.

Telemetry never stops a load: with no collector listening, ``start`` prints one warning
line and exports nothing; if the collector goes away later, OpenTelemetry's own warnings
(retries, failed exports, tracebacks) are condensed into one line.
"""

import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit

from .. import APP_NAME, __version__
from .otel_logs import condense_opentelemetry_logs, warn_once

METER_NAME = "durable_ingest"
RUN_ID_ATTRIBUTE = "ingest.run_id"
# A chunk takes ~10 ms (a few records on SQLite) to a minute (a big chunk on a slow disk).
CHUNK_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# The instruments: name -> (kind, unit, description). The deploy test checks the Grafana
# dashboard against this table.
INSTRUMENTS = {
    "ingest.db.operations": ("counter", "{operation}", "Rows written, by operation"),
    "ingest.records": ("counter", "{record}", "Records finished, by outcome"),
    "ingest.transform.retries": ("counter", "{retry}", "Transform attempts after the first"),
    "ingest.chunk.duration": ("histogram", "s", "Time to read, transform and write one chunk"),
    "ingest.records.in_flight": ("updowncounter", "{record}",
                                 "Records of the chunks this process is working on"),
    "ingest.http.requests": ("counter", "{request}",
                             "HTTP requests for pages, by status_class (2xx, 4xx, 5xx, error)"),
    "ingest.http.request.duration": ("histogram", "s", "Time of one HTTP request for a page"),
}
# A local page answers in ~5 ms; a remote API in 0.05-5 s; a timeout ends one at 30 s.
REQUEST_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STOP_TIMEOUT_MS = 5_000
_SDK_DEFAULT_INTERVAL_MS = 60_000  # the periodic reader's, for a value it refuses

_meters: Optional[dict] = None
_provider = None
_tracer_provider = None
_unreachable: set = set()  # OTLP endpoints found dead at start: not used
_exporting: set = set()  # OTLP endpoints metrics or traces are sent to


# -- configuration ------------------------------------------------------------------------
def configured_exporters() -> set:
    """The metric exporters asked for; {} when none."""
    if _sdk_disabled():
        return set()
    value = (os.environ.get("OTEL_METRICS_EXPORTER") or "").strip()
    if not value:
        return {"otlp"} if _otlp_base() or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") else set()
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    return names - {"none"}


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _otlp_base() -> Optional[str]:
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def metrics_endpoint() -> str:
    """Where the OTLP metric exporter sends: the SDK's own resolution (the function
    ``OTLPMetricExporter()`` calls), so that ``start`` checks the very address it will use."""
    return _sdk_endpoint("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics")


def traces_endpoint() -> Optional[str]:
    """Where DBOS sends its workflow and step spans (DBOS wants the address spelled out);
    None: nowhere (no endpoint, traces turned off, or ``start`` found no collector there)."""
    if _sdk_disabled() or os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if not (_otlp_base() or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    endpoint = _sdk_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "v1/traces")
    return None if endpoint in _unreachable else endpoint


def _sdk_endpoint(variable: str, path: str) -> str:
    """The OTLP/HTTP exporters' rule: ``variable``, else OTEL_EXPORTER_OTLP_ENDPOINT (default
    http://localhost:4318) + ``/path``."""
    from opentelemetry.exporter.otlp.proto.http._common import _resolve_endpoint

    return _resolve_endpoint(variable, path)


def reachable(endpoint: str, timeout: float = 0.5) -> Optional[str]:
    """None if something listens at the endpoint, else why not."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)


def resource():
    """Our defaults (``service.name``, ``service.version``, and ``service.instance.id``: host
    and pid, one per process, so a command's helper processes are told apart) under what
    the environment sets (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), read by the
    SDK's detector."""
    import os
    import socket

    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    defaults = Resource.create({"service.name": APP_NAME, "service.version": __version__,
                                "service.instance.id": f"{socket.gethostname()}:{os.getpid()}"})
    return defaults.merge(OTELResourceDetector().detect())


# -- start and stop -----------------------------------------------------------------------
def start(warn: Callable[[str], None], extra_readers: tuple = ()) -> None:
    """Build this process's MeterProvider (never the global one) and its instruments, and
    the tracer provider DBOS's spans go to when traces are exported. Call ``stop`` at the end."""
    global _meters, _provider, _unreachable, _exporting
    condense_opentelemetry_logs(warn)
    _unreachable, _exporting = set(), set()
    exporters = configured_exporters()
    unknown = exporters - {"otlp", "console"}
    if unknown:
        warn(f"warning: unknown OTEL_METRICS_EXPORTER value(s) {sorted(unknown)}; "
             "use otlp, console, otlp,console or none")
    metrics = metrics_endpoint() if "otlp" in exporters else None
    traces = traces_endpoint()
    down = _unreachable_of(metrics, traces)
    if down:
        _unreachable = set(down)
        lost = " and ".join(kind for kind, e in (("metrics", metrics), ("traces", traces)) if e in down)
        warn(f"warning: no OTLP collector at {_describe(down)}; {lost} are not exported. Start "
             "one (docker compose up -d otel-collector) or unset OTEL_EXPORTER_OTLP_ENDPOINT")
    readers = list(extra_readers)
    if "console" in exporters:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        # No periodic output: the reader's last collection, at shutdown, prints the totals.
        # First in the list, so that a slow OTLP export at the end can't starve it.
        readers.append(PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=sys.stderr, formatter=console_summary),
            export_interval_millis=10**9))
    if metrics and metrics not in down:
        readers.append(_otlp_metric_reader(warn))
        _exporting.add(metrics)
    if traces and traces not in down:
        _start_tracing()
        _exporting.add(traces)
    if not readers:
        _meters = None
        return
    from opentelemetry.sdk.metrics import MeterProvider

    _provider = MeterProvider(resource=resource(), metric_readers=readers)
    meter = _provider.get_meter(METER_NAME, __version__)
    _meters = {name: _instrument(meter, name) for name in INSTRUMENTS}


def _otlp_metric_reader(warn: Callable[[str], None]):
    """OTLP/HTTP every OTEL_METRIC_EXPORT_INTERVAL ms: the exporter and the reader read the
    environment. A non-number interval gets the SDK's logged warning and its default; zero
    or less makes the reader raise, so that one is warned about here."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = OTLPMetricExporter()
    try:
        return PeriodicExportingMetricReader(exporter)
    except ValueError:
        interval = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL")
        warn(f"warning: OTEL_METRIC_EXPORT_INTERVAL={interval!r} is not a positive number of "
             f"milliseconds; using {_SDK_DEFAULT_INTERVAL_MS}")
        return PeriodicExportingMetricReader(exporter, export_interval_millis=_SDK_DEFAULT_INTERVAL_MS)


def _unreachable_of(*endpoints: Optional[str], timeout: float = 0.5) -> dict:
    """{endpoint: why not} for the endpoints nothing listens at."""
    return {e: problem for e in dict.fromkeys(filter(None, endpoints))
            if (problem := reachable(e, timeout))}


def _describe(down: dict) -> str:
    """"http://host:port (why)", once per collector."""
    seen = {}
    for endpoint, problem in down.items():
        parts = urlsplit(endpoint)
        seen.setdefault(f"{parts.scheme}://{parts.netloc}", problem)
    return ", ".join(f"{address} ({problem})" for address, problem in seen.items())


def _instrument(meter, name: str):
    kind, unit, description = INSTRUMENTS[name]
    if kind == "counter":
        return meter.create_counter(name, unit=unit, description=description)
    if kind == "updowncounter":
        return meter.create_up_down_counter(name, unit=unit, description=description)
    buckets = REQUEST_DURATION_BUCKETS if name == "ingest.http.request.duration" \
        else CHUNK_DURATION_BUCKETS
    return meter.create_histogram(name, unit=unit, description=description,
                                  explicit_bucket_boundaries_advisory=buckets)


def stop() -> None:
    """Export the last values, shut the metric exporters down and flush pending spans.
    Never raises. Waits at most ``_STOP_TIMEOUT_MS``, and hardly at all for a collector that
    has gone away (it says so, in the one warning line)."""
    global _meters, _provider, _exporting
    provider, _provider, _meters = _provider, None, None
    budget = _STOP_TIMEOUT_MS / 1000
    gone = _unreachable_of(*_exporting, timeout=0.2)
    _exporting = set()
    if gone:
        budget = 0.2
        warn_once(f"warning: the OTLP collector at {_describe(gone)} went away; the last "
                   "telemetry was not exported")
    deadline = time.monotonic() + budget
    try:
        if provider is not None:
            # Each periodic reader collects and exports one last time while shutting down
            # (a force_flush first would print the console totals twice).
            provider.shutdown(timeout_millis=budget * 1000)
        if _tracer_provider is not None:
            # force_flush exports in the calling thread and ignores its timeout: bound it.
            flush = threading.Thread(target=_tracer_provider.force_flush, daemon=True)
            flush.start()
            flush.join(max(0.0, deadline - time.monotonic()))
    except Exception as exc:  # an exporter failing at exit must not hide the load's result
        warn_once(f"warning: telemetry could not be flushed: {exc}")


# -- what the app reports -----------------------------------------------------------------
def record_writes(tasks: int = 0, errors: int = 0, retries: int = 0,
                  redriven: bool = False, updated: int = 0, skipped: int = 0) -> None:
    """Rows committed: call it from the transaction's ``after_commit`` hook only. Records
    rescued by ``ingest retry`` count as outcome ``redriven``: they were counted as
    ``error`` when loaded."""
    meters = _meters
    if meters is None:
        return
    if tasks:
        meters["ingest.db.operations"].add(tasks, {"operation": "insert_task"})
        meters["ingest.records"].add(tasks, {"outcome": "redriven" if redriven else "task"})
    if errors:
        meters["ingest.db.operations"].add(errors, {"operation": "insert_error"})
        meters["ingest.records"].add(errors, {"outcome": "error"})
    if updated:
        meters["ingest.db.operations"].add(updated, {"operation": "update_task"})
        meters["ingest.records"].add(updated, {"outcome": "updated"})
    if skipped:
        meters["ingest.records"].add(skipped, {"outcome": "skipped"})
    if retries:
        meters["ingest.transform.retries"].add(retries)


def record_request(status_class: str, seconds: float) -> None:
    """One HTTP request for a page, as it happened (a step re-run after a crash really
    asks again, so it is counted again)."""
    meters = _meters
    if meters is not None:
        meters["ingest.http.requests"].add(1, {"status_class": status_class})
        meters["ingest.http.request.duration"].record(seconds, {"status_class": status_class})


def chunk_started(records: int) -> None:
    """This process starts working on a chunk of ``records`` records."""
    meters = _meters
    if meters is not None:
        meters["ingest.records.in_flight"].add(records)


def chunk_finished(records: int, seconds: float, committed: bool) -> None:
    """This process is done with a chunk: ``committed`` False if its work raised."""
    meters = _meters
    if meters is not None:
        meters["ingest.records.in_flight"].add(-records)
        meters["ingest.chunk.duration"].record(seconds, {"committed": committed})


@contextmanager
def chunk(records: int) -> Iterator[None]:
    """Observe the work on one chunk: in flight while the block runs, then its duration."""
    chunk_started(records)
    began = time.perf_counter()
    committed = False
    try:
        yield
        committed = True
    finally:
        chunk_finished(records, time.perf_counter() - began, committed)


def tag_run(run_id: str) -> None:
    """Put the run's ID on the current span (a DBOS workflow's): ``ingest.run_id``. The
    spans started under it (its steps and transactions) inherit it. No-op without tracing."""
    if "opentelemetry.trace" not in sys.modules:  # nobody traces in this process
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(RUN_ID_ATTRIBUTE, run_id)


def console_summary(data) -> str:
    """The console exporter's text: one line per instrument and attribute set."""
    lines = []
    for resource_metrics in data.resource_metrics:
        attributes = resource_metrics.resource.attributes
        lines.append(f"metrics of {attributes.get('service.name')} {attributes.get('service.version')}:")
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = ",".join(f"{k}={_label(v)}" for k, v in sorted(point.attributes.items()))
                    name = f"{metric.name}{{{labels}}}" if labels else metric.name
                    if hasattr(point, "bucket_counts"):
                        lines.append(f"  {name} count={point.count} sum={point.sum:.3f}{metric.unit}")
                    else:
                        lines.append(f"  {name} {point.value}")
    return "\n".join(lines or ["metrics: nothing recorded"]) + "\n"


def _label(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- traces -------------------------------------------------------------------------------
def _start_tracing() -> None:
    """Install the global TracerProvider, once per process, before DBOS adds its OTLP span
    exporter to it (DBOS only builds its own, named after the app, when none is set)."""
    global _tracer_provider
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    if _tracer_provider is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return

    class InheritRunId(SpanProcessor):
        def on_start(self, span, parent_context=None) -> None:
            parent = trace.get_current_span(parent_context)
            run_id = (getattr(parent, "attributes", None) or {}).get(RUN_ID_ATTRIBUTE)
            if run_id:
                span.set_attribute(RUN_ID_ATTRIBUTE, run_id)

    # Flushed by stop(), within a time limit; not again at exit, where a dead collector
    # would hold the process for the exporter's retries.
    provider = TracerProvider(resource=resource(), shutdown_on_exit=False)
    provider.add_span_processor(InheritRunId())
    trace.set_tracer_provider(provider)
    _tracer_provider = provider
