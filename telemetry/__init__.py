"""What a load reports about itself: OpenTelemetry metrics and DBOS's traces.

- ``metrics``: the meter provider, its exporters (console, OTLP/HTTP) configured by the
  standard ``OTEL_*`` variables, the counters a load adds to, and the trace hookup;
- ``otel_logs``: OpenTelemetry's own warnings (retries, failed exports) condensed into
  one line each.

May import: the package's foundation (``__init__``'s names) and the standard library;
nothing else of the package, so that every layer can count.
"""
