"""OpenTelemetry metrics of a load, configured by the standard ``OTEL_*`` variables.

Instruments (OTel names; Prometheus shows dots as underscores, counters with ``_total``):

- ``ingest.db.operations`` (counter, ``{operation}``): rows written, ``operation`` =
  ``insert_task`` | ``insert_error`` (the original demo's counter);
- ``ingest.records`` (counter, ``{record}``): records finished, ``outcome`` = ``task`` | ``error``;
- ``ingest.transform.retries`` (counter, ``{retry}``): transform attempts after the first.

Exporters come from ``OTEL_METRICS_EXPORTER``: ``otlp``, ``console``, both (``otlp,console``)
or ``none``. Unset, it is ``otlp`` when an OTLP endpoint is configured and ``none``
otherwise, so a zero-set-up run prints nothing extra. Console output goes to stderr once,
at the end of the command. Counts are added only when a transaction commits, in the
process that committed it.
"""

import os
import socket
import sys
from typing import Callable, Optional
from urllib.parse import urlsplit

from . import APP_NAME, __version__

METER_NAME = "durable_ingest"
_DEFAULT_INTERVAL_MS = 60_000
_meters: Optional[dict] = None
_provider = None


def configured_exporters() -> set:
    value = os.environ.get("OTEL_METRICS_EXPORTER")
    if value is None:
        return {"otlp"} if _otlp_base() or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") else set()
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    return names - {"none"}


def _otlp_base() -> Optional[str]:
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def metrics_endpoint() -> str:
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    if explicit:
        return explicit
    return (_otlp_base() or "http://localhost:4318").rstrip("/") + "/v1/metrics"


def traces_endpoint() -> Optional[str]:
    """Where DBOS sends its workflow and step spans, if anywhere."""
    explicit = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if explicit:
        return explicit
    base = _otlp_base()
    return base.rstrip("/") + "/v1/traces" if base else None


def reachable(endpoint: str, timeout: float = 0.5) -> Optional[str]:
    """None if something listens at the endpoint, else why not."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def start(warn: Callable[[str], None], extra_readers: tuple = ()) -> None:
    """Build this process's MeterProvider (never the global one) and its instruments."""
    global _meters, _provider
    readers = list(extra_readers)
    exporters = configured_exporters()
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", _DEFAULT_INTERVAL_MS))
    if exporters - {"otlp", "console"}:
        warn(f"warning: unknown OTEL_METRICS_EXPORTER value(s) {sorted(exporters - {'otlp', 'console'})}; "
             "use otlp, console, otlp,console or none")
    if not exporters and not readers:
        _meters = None
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    if "otlp" in exporters:
        endpoint = metrics_endpoint()
        problem = reachable(endpoint)
        if problem:
            warn(f"warning: no OTLP collector at {endpoint} ({problem}); metrics are not "
                 "exported. Start one (docker compose up -d otel-collector) or set "
                 "OTEL_METRICS_EXPORTER=none")
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=endpoint), export_interval_millis=interval))
    if "console" in exporters:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        # Exported once, when the command ends: a summary, not a flood.
        readers.append(PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=sys.stderr), export_interval_millis=10**9))
    if not readers:
        _meters = None
        return
    resource = Resource.create({
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or APP_NAME,
        "service.version": __version__,
    })
    _provider = MeterProvider(resource=resource, metric_readers=readers)
    meter = _provider.get_meter(METER_NAME, __version__)
    _meters = {
        "operations": meter.create_counter(
            "ingest.db.operations", unit="{operation}", description="Rows written, by operation"),
        "records": meter.create_counter(
            "ingest.records", unit="{record}", description="Records finished, by outcome"),
        "retries": meter.create_counter(
            "ingest.transform.retries", unit="{retry}", description="Transform attempts after the first"),
    }


def record_writes(tasks: int = 0, errors: int = 0, retries: int = 0) -> None:
    if _meters is None:
        return
    if tasks:
        _meters["operations"].add(tasks, {"operation": "insert_task"})
        _meters["records"].add(tasks, {"outcome": "task"})
    if errors:
        _meters["operations"].add(errors, {"operation": "insert_error"})
        _meters["records"].add(errors, {"outcome": "error"})
    if retries:
        _meters["retries"].add(retries)


def stop() -> None:
    """Flush and shut the exporters down; never raises."""
    global _meters, _provider
    provider, _provider, _meters = _provider, None, None
    if provider is None:
        return
    try:
        provider.force_flush(timeout_millis=5_000)
        provider.shutdown(timeout_millis=5_000)
    except Exception as exc:  # an exporter failing at exit must not hide the load's result
        print(f"warning: metrics could not be flushed: {exc}", file=sys.stderr)
