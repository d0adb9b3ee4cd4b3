"""The local stack (docker-compose.yml, deploy/, envrc-template) agrees with itself and with
the app: ports, credentials, and the metric names the dashboard queries."""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import REPO
from durable_ingest.telemetry import metrics as telemetry

DEPLOY = REPO / "deploy"
YAML_FILES = [REPO / "docker-compose.yml", *sorted(DEPLOY.rglob("*.yaml")), *sorted(DEPLOY.rglob("*.yml"))]


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose():
    return load_yaml(REPO / "docker-compose.yml")["services"]


@pytest.fixture(scope="module")
def collector():
    return load_yaml(DEPLOY / "otel-collector.yaml")


@pytest.fixture(scope="module")
def envrc() -> dict:
    pairs = re.findall(r"^export (\w+)=(\S+)", (REPO / "envrc-template").read_text(), re.M)
    return {k: v.strip("'\"") for k, v in pairs}


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def published(service: dict) -> dict:
    """{container port: host port} of a compose service."""
    ports = {}
    for mapping in service.get("ports", []):
        host, container = str(mapping).split("/")[0].rsplit(":", 2)[-2:]
        ports[int(container)] = int(host)
    return ports


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses(path):
    assert isinstance(load_yaml(path), dict)


def test_collector_receives_otlp_on_the_standard_ports(compose, collector):
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert port_of(protocols["grpc"]["endpoint"]) == 4317
    assert port_of(protocols["http"]["endpoint"]) == 4318
    assert {4317: 4317, 4318: 4318}.items() <= published(compose["otel-collector"]).items()
    pipelines = collector["service"]["pipelines"]
    assert "otlp" in pipelines["metrics"]["receivers"] and "prometheus" in pipelines["metrics"]["exporters"]
    assert "otlp" in pipelines["traces"]["receivers"]
    mounted = [v.split(":")[0] for v in compose["otel-collector"]["volumes"]]
    assert "./deploy/otel-collector.yaml" in mounted


def test_envrc_points_the_cli_at_the_collector(collector, envrc):
    endpoint = urlsplit(envrc["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.scheme == "http"  # the CLI's exporter speaks OTLP/HTTP
    assert endpoint.port == port_of(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    assert envrc["OTEL_METRICS_EXPORTER"] in ("otlp", "otlp,console")


@pytest.mark.parametrize("variable", ["DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL"])
def test_envrc_database_urls_match_the_compose_postgres(compose, envrc, variable):
    postgres = compose["postgres"]
    env = postgres["environment"]
    url = urlsplit(envrc[variable])
    assert url.scheme in ("postgresql", "postgres")
    assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert url.port == published(postgres)[5432]
    if variable == "DATABASE_URL":
        assert url.path.lstrip("/") == env["POSTGRES_DB"]


def test_prometheus_scrapes_the_collectors_prometheus_exporter(compose, collector):
    exporter_port = port_of(collector["exporters"]["prometheus"]["endpoint"])
    scrape = load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"]
    targets = [t for job in scrape for c in job["static_configs"] for t in c["targets"]]
    assert f"otel-collector:{exporter_port}" in targets
    assert "otel-collector" in compose


def prometheus_names(name: str, kind: str, unit: str) -> set:
    """What the collector's Prometheus exporter calls an instrument's series: dots become
    underscores, a unit adds its suffix (annotations like {record} add none), counters get
    _total, histograms _bucket/_sum/_count."""
    base = name.replace(".", "_") + {"s": "_seconds", "ms": "_milliseconds", "By": "_bytes"}.get(unit, "")
    if kind == "counter":
        return {base + "_total"}
    if kind == "histogram":
        return {base + "_bucket", base + "_sum", base + "_count"}
    return {base}


def dashboard_metrics() -> set:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "durable-ingest.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs
    return {name for expr in exprs for name in re.findall(r"\b(ingest_[a-z0-9_]+)", expr)}


def test_dashboard_queries_only_metrics_the_app_exports():
    exported = {series: name for name, spec in telemetry.INSTRUMENTS.items()
                for series in prometheus_names(name, *spec[:2])}

    queried = dashboard_metrics()

    assert queried <= exported.keys(), f"unknown metrics: {sorted(queried - exported.keys())}"
    assert {exported[q] for q in queried} == telemetry.INSTRUMENTS.keys()  # and shows them all


def test_grafana_provisioning_finds_the_dashboard_and_prometheus(compose):
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "durable-ingest.json").read_text())
    [source] = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    assert urlsplit(source["url"]).port == published(compose["prometheus"])[9090]
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    [provider] = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")["providers"]
    mounts = dict(v.split(":")[:2] for v in compose["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_traces_go_on_to_jaeger(compose, collector):
    """DBOS's spans reach the collector over OTLP; the collector forwards them to the
    compose service jaeger, whose UI is published on 127.0.0.1."""
    exporters = collector["service"]["pipelines"]["traces"]["exporters"]
    assert "otlp/jaeger" in exporters
    host, port = collector["exporters"]["otlp/jaeger"]["endpoint"].split(":")
    assert host == "jaeger" and port == "4317"
    assert compose["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert published(compose["jaeger"]) == {16686: 16686}
    assert all(p.startswith("127.0.0.1:") for p in compose["jaeger"]["ports"])
