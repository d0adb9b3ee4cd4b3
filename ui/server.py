"""``ingest ui``: a read-only web page of the runs, against the same databases as the other
commands.

Served by the standard library's ``ThreadingHTTPServer``: nothing to install, nothing to
build, nothing fetched from a CDN, so the page works offline. Charts are SVG drawn here, on
the server; the page's only script re-fetches the live part of the page (an HTML fragment)
once a second while a run is queued or running, and stops when nothing is live. Every value
is HTML-escaped; the database URL is shown redacted, as every command prints it.

Routes: ``/`` (the schedules, then the runs, newest first; ``?schedule=NAME`` only its
runs), ``/runs/RUN_ID`` (one run; ``?files=N`` pages its files), ``/fragment/...`` (the live
part of either), ``/api/runs``, ``/api/runs/RUN_ID`` and ``/api/schedules`` (the same data
as ``ingest status --json`` and ``ingest schedule list --json``).
"""

import hashlib
import hmac
import html
import json
import threading
import time
from contextlib import contextmanager
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, quote, urlsplit

from ..views import app_database as appviews, error_triage, runs as operations
from ..views.error_triage import ErrorFilter
from ..views.render import label_of, sample_of
from ..views.schedules import schedules_of
from ..errors import IngestError, RunNotFound, UsageError

DEFAULT_PORT = 8787
RUNS_SHOWN = 1000
LIVE_STATES = ("running", "queued")
POLL_MS = 1000
COLORS = {"SUCCESS": "#3a9d5d", "PENDING": "#3b78c4", "ENQUEUED": "#9aa7b8", "ERROR": "#d2463c",
          "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "#d2463c", "CANCELLED": "#d2463c"}
RETRIED = "#e39b2d"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
td.l,th.l{text-align:left}a{color:#2456a4}code{background:#f3f3f3;padding:2px 4px}
.state-interrupted,.state-incomplete,.state-failed{color:#b3261e;font-weight:600}
.state-running,.state-queued{color:#2456a4;font-weight:600}h2{margin-top:1.4em}.muted{color:#777}
"""
SCRIPT = """
const live=document.getElementById('live');
async function refresh(){
  if(!live.querySelector('[data-live="1"]'))return;
  try{const r=await fetch(live.dataset.src);if(r.ok)live.innerHTML=await r.text();}catch(e){}
}
setInterval(refresh,%d);
function copy(b){navigator.clipboard&&navigator.clipboard.writeText(b.previousElementSibling.textContent);}
""" % POLL_MS


def e(value) -> str:
    return html.escape("" if value is None else str(value))


# -- the data --------------------------------------------------------------------------------------
class Views:
    """What the pages show, read through one long-lived DBOS client (opened once the
    system database exists: looking creates nothing)."""

    def __init__(self, database_url: Optional[str]):
        self.database_url = database_url
        self._client = None
        self._lock = threading.Lock()

    @contextmanager
    def client(self):
        from dbos import DBOSClient

        from .. import database

        with self._lock:
            if self._client is None:
                system_url = database.resolve(self.database_url).system_url
                if operations.system_database_exists(system_url):
                    self._client = DBOSClient(system_database_url=system_url)
        yield self._client

    def runs(self, limit: int = RUNS_SHOWN) -> list:
        with self.client() as client:
            return operations.runs_of(client, self.database_url, limit) if client else []

    def schedules(self) -> list:
        with self.client() as client:
            return schedules_of(client, self.database_url) if client else []

    def run(self, run_id: str) -> dict:
        with self.client() as client:
            return operations.detail_of(client, self.database_url, run_id)

    def files(self, run_id: str, page: int, table: Optional[str] = None) -> dict:
        return appviews.run_files(self.database_url, run_id, page, table)

    def errors(self, run_id: str) -> list:
        return error_triage.error_groups(self.database_url, ErrorFilter(run_id=run_id), 20)

    def close(self) -> None:
        if self._client is not None:
            self._client.destroy()


# -- the pages ----------------------------------------------------------------------------------
def page(title: str, src: str, body: str, where: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{STYLE}</style></head><body><p class='muted'>ingest ui · {e(where)} · "
            f"<a href='/'>runs</a></p><main id='live' data-src='{e(src)}'>{body}</main>"
            f"<script>{SCRIPT}</script></body></html>")


def runs_fragment(runs: list) -> str:
    live = any(r["state"] in LIVE_STATES for r in runs)
    gc_mark = " <span class='muted gc' title='ingest gc removed its history'>(gc)</span>"
    head = ("<tr><th class=l>run</th><th class=l>state</th><th>files</th><th>records</th>"
            "<th>tasks</th><th>updated</th><th>skipped</th><th>errors</th><th>retries</th>"
            "<th class=l>started</th><th>duration s</th><th>records/s</th><th class=l>table</th>"
            "<th class=l>label</th><th class=l>dataset</th></tr>")
    rows = "".join(
        f"<tr class='run' data-run='{e(r['run_id'])}'><td class=l><a href='/runs/{e(r['run_id'])}'>"
        f"{e(r['run_id'])}</a></td><td class='l state-{e(r['state'])}'>{e(r['state'])}"
        f"{gc_mark if r.get('history_removed') else ''}</td>"
        f"<td>{e(r['files'])}</td><td>{e(r['records'])}</td><td class=tasks>{e(r['tasks'])}</td>"
        f"<td>{e(r.get('updated', 0))}</td><td>{e(r.get('skipped', 0))}</td>"
        f"<td class=errors>{e(r['errors'])}</td><td>{e(r['retries'])}</td>"
        f"<td class=l>{e(clock(r['started_at']))}</td><td>{e(r['duration_s'])}</td>"
        f"<td>{e(r['records_per_s'])}</td><td class='l table'>{e(r.get('table') or 'tasks')}</td>"
        f"<td class='l label'>{e(label_of(r, none=''))}</td><td class=l>{e(r['dataset'])}</td></tr>"
        for r in runs)
    empty = "" if runs else "<p>no runs yet; start one with: <code>ingest load FILE</code></p>"
    return (f"<div data-live='{int(live)}'><h1>Runs</h1>{empty}"
            f"<table id=runs>{head}{rows}</table></div>")


def schedules_fragment(found: list) -> str:
    """The schedules above the runs: cron, next tick, runs so far, skipped, the last run."""
    if not found:
        return ""
    rows = "".join(
        f"<tr class=schedule><td class=l><a href='/?schedule={e(s['name'])}'>{e(s['name'])}</a>"
        f"</td><td class=l>{e(s['cron'])} {e(s['tz'])}</td><td class=l>"
        f"{'paused' if s['paused'] else 'active'}</td><td class=l>{e(s['next_tick'] or '-')}</td>"
        f"<td>{e(s['runs'])}</td><td>{e(s['skipped'])}</td><td class=l>" + (
            f"<a href='/runs/{e(s['last_run']['run_id'])}'>{e(s['last_run']['run_id'])}</a> "
            f"{e(s['last_run']['state'])}" if s["last_run"] else "no run yet") + "</td></tr>"
        for s in found)
    return ("<h1>Schedules</h1><table id=schedules><tr><th class=l>schedule</th><th class=l>"
            "cron</th><th class=l>state</th><th class=l>next tick</th><th>runs</th><th>skipped"
            f"</th><th class=l>last run</th></tr>{rows}</table>")


def run_fragment(detail: dict, files: dict, errors: list) -> str:
    run_id, state = detail["run_id"], detail["state"]
    counts = " · ".join(f"{name} <b class={name}>{e(detail.get(name, 0))}</b>" for name in
                        ("records", "tasks", "updated", "skipped", "errors", "retries"))
    return (f"<div data-live='{int(state in LIVE_STATES)}'><h1>{e(run_id)}</h1>"
            f"<p><span class='state-{e(state)}' id=state>{e(state)}</span>"
            f"{' (history removed by ingest gc)' if detail.get('history_removed') else ''}"
            f" · {counts} · "
            f"{e(detail['dataset'])} → table <b id=table>{e(detail.get('table', 'tasks'))}</b></p>"
            f"{pages_line(detail.get('pages'))}"
            f"{actions(run_id, state, detail['errors'])}"
            f"<h2>Throughput</h2>{throughput_chart(detail['chunks'], run_span(detail))}"
            f"<h2>Chunks by worker</h2>{timeline(detail['chunks'], run_span(detail))}"
            f"<h2>Errors</h2>{error_table(errors)}<h2>Files</h2>{files_table(run_id, files)}</div>")


def pages_line(pages: Optional[dict]) -> str:
    """A run of API pages: how many were fetched, new, already loaded, failed, retried."""
    if not pages:
        return ""
    counts = " · ".join(f"{label} <b>{e(pages.get(name, 0))}</b>" for name, label in
                        (("fetched", "pages fetched"), ("new", "new"), ("already", "already loaded"),
                         ("failed", "failed"), ("http_retries", "http retries")))
    return f"<p id=pages>{counts}</p>"


def actions(run_id: str, state: str, errors: int) -> str:
    """The commands that act on this run (the page itself changes nothing)."""
    wanted = []
    if state in ("interrupted", "incomplete", "failed"):
        wanted.append(f"ingest resume {run_id}")
    if errors:
        wanted.append(f"ingest retry {run_id}")
    return "".join(f"<p class=action><code>{e(c)}</code> <button onclick='copy(this)'>copy</button></p>"
                   for c in wanted)


def run_span(detail: dict) -> tuple:
    """(start, seconds) of a run for its charts: from its start to its end (to now while it
    runs), and never shorter than its chunks' times, which the system database may keep to
    the second only (SQLite)."""
    chunks = detail["chunks"]
    now = time.time()
    times = [t for c in chunks for t in (c["started_at"], c["ended_at"]) if t]
    start = detail.get("started_at") or min(times, default=now)
    end = start + detail["duration_s"] if detail.get("duration_s") else now
    end = max([end, *(c["ended_at"] for c in chunks if c["ended_at"])])
    return start, max(end - start, MIN_SPAN_SEC)


MIN_SPAN_SEC = 1e-3
MIN_BAR_PX = 3.0  # a chunk as quick as the times' resolution still shows


def throughput_chart(chunks: list, span: tuple, width: int = 720, height: int = 160) -> str:
    """Records finished per second over the run (``span``: its start and seconds), as bars
    from the chunks' end times: at most 60 bars, about two chunks a bar, none shorter than a
    second (the resolution of the end times) unless the whole run is."""
    done = [c for c in chunks if c["ended_at"] and c["state"] == "SUCCESS"]
    if not done:
        return "<p class=muted>no chunk has finished yet</p>"
    start, seconds = span
    buckets = max(1, min(60, len(done) // 2, int(seconds)))
    per = [0.0] * buckets
    for c in done:
        at = min(max(c["ended_at"] - start, 0.0), seconds)
        per[min(int(at / seconds * buckets), buckets - 1)] += c["tasks"] + c["errors"]
    rates = [n / (seconds / buckets) for n in per]
    top = max(rates) or 1
    bar = width / buckets
    bars = "".join(f"<rect x='{i * bar:.1f}' y='{height - r / top * height:.1f}' width='{bar - 1:.1f}' "
                   f"height='{r / top * height:.1f}' fill='#3b78c4'><title>{r:,.0f} records/s</title></rect>"
                   for i, r in enumerate(rates) if r)
    what = "peak" if buckets > 1 else "average"
    return (f"<svg id=throughput width='{width}' height='{height + 20}' role=img>"
            f"<g>{bars}</g><text x='0' y='{height + 15}' font-size='11'>0 s</text>"
            f"<text x='{width - 60}' y='{height + 15}' font-size='11'>{duration(seconds)}</text>"
            f"<text x='4' y='12' font-size='11'>{what} {top:,.0f} records/s</text></svg>")


def duration(seconds: float) -> str:
    """A chart's time axis end: ``1.5 s``, ``0.25 s``, ``12 ms``."""
    if seconds >= 10:
        return f"{seconds:,.0f} s"
    if seconds >= 0.1:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"


def timeline(chunks: list, span: tuple, width: int = 720, lane: int = 18) -> str:
    """One lane per worker (executor); a bar per chunk from when it was taken to its end,
    on the run's time axis (``span``). Green done, orange retried, red failed or given up,
    blue running."""
    if not chunks:
        return "<p class=muted>no chunks yet</p>"
    now = time.time()
    workers = sorted({c["executor"] or "?" for c in chunks})
    start, seconds = span
    label = 130
    scale = (width - label) / seconds
    bars = []
    for c in chunks:
        y = workers.index(c["executor"] or "?") * lane
        x = label + min(max((c["started_at"] or now) - start, 0.0), seconds) * scale
        w = max(((c["ended_at"] or now) - (c["started_at"] or now)) * scale, MIN_BAR_PX)
        x = min(x, width - MIN_BAR_PX)
        w = min(w, width - x)
        color = RETRIED if c["retry_state"] and c["state"] == "SUCCESS" else COLORS.get(c["state"], "#888")
        bars.append(f"<rect class=chunk data-chunk='{c['chunk']}' x='{x:.1f}' y='{y + 2}' width='{w:.1f}' "
                    f"height='{lane - 4}' fill='{color}'><title>chunk {c['chunk']} ({e(c['records'])}): "
                    f"{e(c['state'])}, {c['recoveries']} recoveries"
                    f"{', retried' if c['retry_state'] else ''}</title></rect>")
    names = "".join(f"<text x='0' y='{i * lane + 13}' font-size='11'>{e(w)}</text>"
                    for i, w in enumerate(workers))
    return (f"<svg id=timeline width='{width}' height='{len(workers) * lane + 4}' role=img>"
            f"{names}{''.join(bars)}</svg>")


def error_table(groups: list) -> str:
    if not groups:
        return "<p class=muted>no errors</p>"
    rows = "".join(f"<tr class=error-group><td>{e(g['count'])}</td><td class=l>{e(g['error_type'])}</td>"
                   f"<td class=l>{e(sample_of(g))}</td><td class=l>{e(g['error'])}</td></tr>"
                   for g in groups)
    return ("<table id=errors><tr><th>count</th><th class=l>type</th><th class=l>sample</th>"
            f"<th class=l>error</th></tr>{rows}</table>")


def files_table(run_id: str, files: dict) -> str:
    rows = "".join(f"<tr><td>{f['ordinal']}</td><td class=l>{e(f['state'])}</td><td>{f['records']}</td>"
                   f"<td>{f['tasks']}</td><td>{f['errors']}</td><td class=l>{e(f['name'])}"
                   f"{' (' + e(f['error']) + ')' if f['error'] else ''}</td></tr>" for f in files["files"])
    more = (f"<a href='/runs/{e(run_id)}?files={files['next_page']}'>next files</a>"
            if files["next_page"] else "")
    return (f"<p class=muted>files {files['first']}-{files['last']} of {files['total']}</p>"
            "<table id=files><tr><th>#</th><th class=l>state</th><th>records</th><th>tasks</th>"
            f"<th>errors</th><th class=l>file</th></tr>{rows}</table>{more}")


def clock(epoch: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


# -- the server ------------------------------------------------------------------------------------
COOKIE = "ingest_ui"


def session_of(token: str) -> str:
    """What the page's cookie holds: derived from the token, never the token itself."""
    return hashlib.sha256(f"durable-ingest ui|{token}".encode()).hexdigest()


def same(given: str, expected: str) -> bool:
    """Compared in constant time: a wrong guess says nothing of how close it came."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Handler(BaseHTTPRequestHandler):
    views: Views
    where: str
    token: Optional[str] = None  # with one, every request shows it (see ``admitted``)

    def do_GET(self) -> None:  # noqa: N802  (the standard library's name)
        began = time.perf_counter()
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if self.token is not None and not self.admitted(url, query, began):
            return
        try:
            status, kind, body = self.route(parts, query)
        except RunNotFound as exc:
            status, kind, body = 404, "text/plain", str(exc)
        except IngestError as exc:
            status, kind, body = 503, "text/plain", str(exc)
        self.reply(status, kind, body, began)

    def admitted(self, url, query: dict, began: float) -> bool:
        """Whether the request shows the token: as ``?token=`` (answered with a cookie and the
        same address without it, so the token stays out of the history), the cookie, or an
        ``Authorization: Bearer`` header. Otherwise it is answered 401 here."""
        given = (query.get("token") or [""])[0]
        if given and same(given, self.token):
            rest = "&".join(f"{k}={v}" for k, values in query.items() if k != "token"
                            for v in values)
            self.reply(303, "text/plain", "", began, [
                ("Location", url.path + (f"?{rest}" if rest else "")),
                ("Set-Cookie", f"{COOKIE}={session_of(self.token)}; HttpOnly; "
                               "SameSite=Strict; Path=/")])
            return False
        cookies = SimpleCookie(self.headers.get("Cookie") or "")
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if (COOKIE in cookies and same(cookies[COOKIE].value, session_of(self.token))) or \
                (bearer and same(bearer, self.token)):
            return True
        self.reply(401, "text/plain", "this page needs the token ingest ui was started with: "
                   "open it as /?token=TOKEN", began)
        return False

    def reply(self, status: int, kind: str, body: str, began: float, headers=()) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Server-Timing", f"app;dur={(time.perf_counter() - began) * 1000:.1f}")
        self.end_headers()
        self.wfile.write(data)

    def route(self, parts: list, query: dict) -> tuple:
        fragment = parts[:1] == ["fragment"]
        parts = parts[1:] if fragment else parts
        if parts[:1] == ["api"]:
            data = self.views.runs() if parts == ["api", "runs"] else \
                self.views.schedules() if parts == ["api", "schedules"] else \
                self.views.run(parts[2]) if len(parts) == 3 and parts[1] == "runs" else None
            return (200, "application/json", json.dumps(data)) if data is not None else \
                (404, "text/plain", "not found")
        if not parts:
            chosen = (query.get("schedule") or [None])[0]
            runs = [r for r in self.views.runs() if not chosen
                    or (r.get("schedule") or {}).get("name") == chosen]
            body = ("" if chosen else schedules_fragment(self.views.schedules())) + \
                runs_fragment(runs)
            src = "/fragment/" + (f"?schedule={quote(chosen)}" if chosen else "")
            return 200, "text/html", body if fragment else page("runs", src, body, self.where)
        if len(parts) == 2 and parts[0] == "runs":
            run_id = parts[1]
            files_page = (query.get("files") or ["1"])[0]
            if not files_page.isdigit() or not 1 <= int(files_page) <= 10**9:
                return 400, "text/plain", "files: a page number from 1"
            files_page = int(files_page)
            detail = self.views.run(run_id)
            body = run_fragment(detail, self.views.files(run_id, files_page, detail["table"]),
                                self.views.errors(run_id))
            src = f"/fragment/runs/{run_id}?files={files_page}"
            return 200, "text/html", body if fragment else page(run_id, src, body, self.where)
        return 404, "text/plain", "not found"

    def log_message(self, *args) -> None:  # quiet: the command prints its address once
        pass


def listening(host: str, port: int, handler) -> ThreadingHTTPServer:
    """The server bound to ``host:port``, or an ``IngestError`` that names the fix."""
    import errno

    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise IngestError(f"port {port} of {host} is in use (another ingest ui?): choose "
                              "another with --port N, or --port 0 for any free one") from None
        if exc.errno == errno.EACCES:
            raise IngestError(f"port {port} of {host} needs privileges: choose one above 1023 "
                              "with --port N") from None
        raise IngestError(f"can't listen on {host}:{port} ({exc.strerror or exc}): check --host "
                          "(an address of this machine) and --port") from None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(database_url: Optional[str], host: str, port: int, token: Optional[str] = None,
          say=lambda line: None) -> None:
    """Serve until interrupted; ``say`` gets the page's address once it listens. Beyond
    this machine (any host but loopback) only with a token: the page shows record data in
    its error samples."""
    from .. import database

    if host not in LOOPBACK and not token:
        raise UsageError(f"ingest ui on {host} would show your runs, file names and record "
                         f"data (error samples) to anyone who reaches it: give it a token, "
                         f"--token TOKEN or INGEST_UI_TOKEN, or serve on 127.0.0.1")
    views = Views(database_url)
    where = database.redact(database.resolve(database_url).app_url)
    handler = type("BoundHandler", (Handler,), {"views": views, "where": where,
                                                "token": token or None})
    server = listening(host, port, handler)
    server.daemon_threads = True
    ask = "; open it once as /?token=TOKEN, with the token you gave" if token else ""
    say(f"ingest ui on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop){ask}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        views.close()
