"""A local paginated JSON API, for tests and benchmarks of loading pages over HTTP.

``ingest load 'http://127.0.0.1:PORT/users?page={page}' --pages 1-100`` fetches one URL per
page; this server answers ``GET /users?page=N`` with randomuser.me-shaped records from
``durable_ingest.generate`` (``records`` per page, distinct and deterministic per page),
and can misbehave on purpose: random 500/429 answers, connection resets, scripted faults
per page, slow answers, and 401s for missing headers or HTTP Basic credentials.

Each page is written to a file once at start (and gzip-compressed once, with ``gzip=True``)
and streamed from disk with ``Content-Length``, so large pages cost no memory. HTTP/1.1
keep-alive works, so a client's connection reuse is exercised too.

In tests, in-process (the server runs in a background thread)::

    with PageServer(pages=3, records=20, script={2: [500, "reset"]}) as server:
        requests.get(server.page_url.format(page=1))      # 200, 20 records
        assert server.requests_by_page[1] == 1

From a shell (or a benchmark, as a subprocess)::

    .venv/bin/python benchmarks/page_server.py --pages 100 --records 1000
    .venv/bin/python benchmarks/page_server.py --pages 10 --gzip --fail-rate 0.1 --reset-rate 0.02

It prints exactly one line ``READY http://127.0.0.1:PORT/users?page={page}`` once it
accepts connections, serves until SIGTERM or SIGINT, then prints
``REQUESTS <total> STATUSES <json of status -> count>`` and exits 0.

Script actions (``script={page: [action, ...]}``), applied to that page's 1st, 2nd, ...
request, after which the page is served normally:

- an int status (500, 503, 404, 429, ...): answer that status with a short JSON body;
  429 carries ``Retry-After: 1``
- ``"reset"``: read the request, then reset the connection without answering
- ``"reset:partial"``: send the headers and half the body, then reset the connection
- ``"slow:SECONDS"``: wait that long, then answer normally (for client timeouts)
- ``"never:STATUS"``: this and every later request of the page gets STATUS
- ``"redirect:URL"``: answer 302 with ``Location: URL``
"""

import argparse
import base64
import binascii
import io
import json
import random
import shutil
import signal
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from gzip import GzipFile
from gzip import compress as gzip_compress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, Iterable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import orjson

try:
    from durable_ingest.generate import datasets as generate
except ImportError:  # not installed: the repository root is the package, so add its parent
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from durable_ingest.generate import datasets as generate

HOST = "127.0.0.1"
FORMATS = ("json", "ndjson")
CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson"}
PAGE_SEED_STRIDE = 100003  # page P's records come from seed * PAGE_SEED_STRIDE + P
SEEN_HEADERS_KEPT = 50
POLL_INTERVAL = 0.05  # seconds close() may wait for the serving thread to notice
FILE_BUFFER = 1 << 20
COPY_CHUNK = 1 << 16
GZIP_LEVEL = 6  # level 9 is several times slower for a few % smaller pages
SCRIPT_RETRY_AFTER = "1"
RANDOM_RETRY_AFTER = "0"
LINGER_THEN_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST

Body = Union[Path, bytes]


# --- Faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What to do with one request instead of (or before) serving its page.

    ``kind`` is "status" (answer ``status``), "never" (the same, forever), "reset" (reset
    the connection, after half the body when ``partial``) or "slow" (sleep ``seconds``,
    then serve normally) or "redirect" (a 302 to ``location``).
    """

    kind: str
    status: int = 0
    seconds: float = 0.0
    partial: bool = False
    retry_after: Optional[str] = None
    location: Optional[str] = None


def status_action(status: int, kind: str = "status",
                  retry_after: str = SCRIPT_RETRY_AFTER) -> Action:
    """Answer ``status``; a 429 also carries ``Retry-After``."""
    return Action(kind, status=status, retry_after=retry_after if status == 429 else None)


def parse_action(action: Union[int, str]) -> Action:
    """A script entry (500, "reset", "reset:partial", "slow:2.5", "never:503") as an Action."""
    if isinstance(action, int) and not isinstance(action, bool):
        return status_action(action)
    if isinstance(action, str):
        kind, _, argument = action.partition(":")
        try:
            if action == "reset":
                return Action("reset")
            if action == "reset:partial":
                return Action("reset", partial=True)
            if kind == "slow":
                return Action("slow", seconds=float(argument))
            if kind == "never":
                return status_action(int(argument), kind="never")
            if kind == "redirect":
                return Action("redirect", status=302, location=argument)
            return status_action(int(action))
        except ValueError:
            pass
    raise ValueError(f"unknown script action {action!r}: expected an int status, 'reset', "
                     "'reset:partial', 'slow:SECONDS', 'never:STATUS' or 'redirect:URL'")


def parse_script(script: Optional[dict]) -> dict:
    """``{page: [action, ...]}`` with int pages and parsed actions."""
    return {int(page): [parse_action(action) for action in actions]
            for page, actions in (script or {}).items()}


class Faults:
    """Which requests misbehave: a page's script first, then the random fail/reset rates.

    The random draws come from one ``random.Random(seed)``, so the sequence of faults is
    the same on every run (which request gets which depends on arrival order).
    """

    def __init__(self, script: dict, fail_rate: float, reset_rate: float, seed: int):
        self._script = script
        self._positions = Counter()
        self._fail_rate = fail_rate
        self._reset_rate = reset_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def next_action(self, page: int) -> Optional[Action]:
        return self._scripted(page) or self._random()

    def _scripted(self, page: int) -> Optional[Action]:
        actions = self._script.get(page)
        if not actions:
            return None
        with self._lock:
            position = self._positions[page]
            if position >= len(actions):
                return None
            action = actions[position]
            if action.kind != "never":
                self._positions[page] += 1
            return action

    def _random(self) -> Optional[Action]:
        if not (self._fail_rate or self._reset_rate):
            return None
        with self._lock:
            draw = self._rng.random()
        if draw < self._fail_rate:
            status = 500 if draw < self._fail_rate / 2 else 429
            return status_action(status, retry_after=RANDOM_RETRY_AFTER)
        draw -= self._fail_rate
        if draw < self._reset_rate:
            return Action("reset", partial=draw >= self._reset_rate / 2)
        return None


# --- Authentication -------------------------------------------------------------------------


def basic_credentials(header: Optional[str]) -> Optional[tuple]:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def auth_failure(headers, require_headers: dict, basic_auth: Optional[tuple]) -> Optional[str]:
    """Why a request is refused with 401, or None when it may pass."""
    for name, value in require_headers.items():
        if headers.get(name) != value:
            return f"missing or wrong header {name}"
    credentials = basic_credentials(headers.get("Authorization"))
    if basic_auth is not None and credentials != tuple(basic_auth):
        return "HTTP Basic authentication required"
    return None


# --- Page files -----------------------------------------------------------------------------


def page_seed(seed: int, page: int) -> int:
    return seed * PAGE_SEED_STRIDE + page


def envelope_info(seed: int, page: int, count: int) -> bytes:
    return orjson.dumps({"seed": generate.info_seed(page_seed(seed, page)), "results": count,
                         "page": page, "version": generate.API_VERSION})


def write_envelope(out: BinaryIO, records: Iterable[dict], info: bytes) -> None:
    """``{"results": [r1, r2, ...], "info": {...}}``, one record at a time."""
    out.write(b'{"results": [')
    for index, record in enumerate(records):
        if index:
            out.write(b", ")
        out.write(orjson.dumps(record))
    out.write(b'], "info": ' + info + b"}\n")


def write_ndjson(out: BinaryIO, records: Iterable[dict]) -> None:
    for record in records:
        out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))


def write_page(path: Path, page: int, records: int, seed: int, fmt: str) -> None:
    rows = generate.generate_records(records, page_seed(seed, page))
    with open(path, "wb", buffering=FILE_BUFFER) as out:
        if fmt == "json":
            write_envelope(out, rows, envelope_info(seed, page, records))
        else:
            write_ndjson(out, rows)


def compress_file(source: Path, target: Path) -> None:
    """gzip ``source`` into ``target``, streamed, with no name or time in the header."""
    with open(source, "rb") as raw, open(target, "wb") as out:
        with GzipFile(fileobj=out, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as packed:
            shutil.copyfileobj(raw, packed, COPY_CHUNK)


def write_pages(directory: Path, pages: int, records: int, seed: int, fmt: str,
                gzipped: bool) -> tuple:
    """Write pages 1..pages; ({page: file}, {page: gzip file}, the latter empty unless gzipped)."""
    files, packed = {}, {}
    for page in range(1, pages + 1):
        files[page] = directory / f"page-{page:06d}.{fmt}"
        write_page(files[page], page, records, seed, fmt)
        if gzipped:
            packed[page] = files[page].with_name(files[page].name + ".gz")
            compress_file(files[page], packed[page])
    return files, packed


def empty_page(seed: int, page: int, fmt: str) -> bytes:
    """A page past the end: an envelope with no results (json), or no lines at all (ndjson)."""
    if fmt == "ndjson":
        return b""
    out = io.BytesIO()
    write_envelope(out, (), envelope_info(seed, page, 0))
    return out.getvalue()


def body_size(body: Body) -> int:
    return body.stat().st_size if isinstance(body, Path) else len(body)


# --- HTTP -----------------------------------------------------------------------------------


def requested_page(target: str) -> Optional[int]:
    """N from ``/users?page=N``; None for any other path or a page that is not an int."""
    parts = urlsplit(target)
    values = parse_qs(parts.query).get("page")
    if parts.path != "/users" or not values:
        return None
    try:
        return int(values[0])
    except ValueError:
        return None


def accepts_gzip(headers) -> bool:
    return "gzip" in (headers.get("Accept-Encoding") or "").lower()


class PageHandler(BaseHTTPRequestHandler):
    """``GET /users?page=N``: auth, then this request's fault if any, then the page."""

    protocol_version = "HTTP/1.1"
    server_version = "PageServer/1.0"
    disable_nagle_algorithm = True  # else headers then body on a kept-alive socket wait 40 ms

    @property
    def app(self) -> "PageServer":
        return self.server.app

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # no line per request on stderr

    def setup(self):
        super().setup()
        self.app._track(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.app._untrack(self.connection)

    def do_GET(self):
        page = requested_page(self.path)
        self.app._note_request(page, self.headers)
        refusal = auth_failure(self.headers, self.app.require_headers, self.app.basic_auth)
        if refusal:
            return self.send_json(401, {"error": refusal}, self._challenge())
        if page is None:
            return self.send_json(404, {"error": "expected GET /users?page=N with an int N"})
        action = self.app._faults.next_action(page)
        if action is None or self.apply(action, page):
            self.send_page(page)

    def _challenge(self) -> dict:
        return {"WWW-Authenticate": 'Basic realm="page_server"'} if self.app.basic_auth else {}

    def apply(self, action: Action, page: int) -> bool:
        """Carry out a fault; True when the page should still be served afterwards."""
        if action.kind == "slow":
            time.sleep(action.seconds)
            return True
        if action.kind == "reset":
            self.reset(page if action.partial else None)
            return False
        headers = {"Retry-After": action.retry_after} if action.retry_after is not None else {}
        if action.location is not None:
            headers = {"Location": action.location}
        self.send_json(action.status, {"error": f"injected {action.status}", "page": page}, headers)
        return False

    def send_page(self, page: int) -> None:
        gzipped = self.app.gzip and accepts_gzip(self.headers)
        body = self.app._page_body(page, gzipped)
        self.app._note_status(200)
        self.send_head(200, body_size(body), self.app.content_type, gzipped)
        self.send_body(body)

    def send_json(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        body = orjson.dumps(payload)
        self.app._note_status(status)
        self.send_head(status, len(body), "application/json", False, headers)
        self.wfile.write(body)

    def send_head(self, status: int, length: int, content_type: str, gzipped: bool,
                  headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if self.app.gzip:
            self.send_header("Vary", "Accept-Encoding")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def send_body(self, body: Body, count: Optional[int] = None) -> None:
        """The body, or its first ``count`` bytes; files go straight from disk (sendfile)."""
        if count == 0:
            return  # socket.sendfile() would read count=0 as "the whole file"
        if isinstance(body, bytes):
            self.wfile.write(body[:count])
            return
        with open(body, "rb") as source:
            self.connection.sendfile(source, 0, count)

    def reset(self, partial_page: Optional[int]) -> None:
        """Reset the connection (after the headers and half the body, for a partial page)."""
        self.app._note_status("reset")
        if partial_page is not None:
            body = self.app._page_body(partial_page, False)
            self.send_head(200, body_size(body), self.app.content_type, False)
            self.send_body(body, body_size(body) // 2)
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_THEN_RESET)
        self.rfile.close()  # drop the makefile reference, so close() really closes the socket
        self.connection.close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple, app: "PageServer"):
        self.app = app
        super().__init__(address, PageHandler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's getfqdn() lookup
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client hanging up is no error, nor is a slow answer finishing after close().
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)) and not self.app.closed:
            super().handle_error(request, client_address)


# --- The server -----------------------------------------------------------------------------


class PageServer:
    """A paginated JSON API on 127.0.0.1, served from a background thread.

    Pages 1..``pages`` hold ``records`` records each; any other page is 200 with no
    records. Use it as a context manager (or ``start()`` / ``close()``). ``url`` and
    ``page_url`` are known as soon as it is constructed (the port is bound then).
    """

    def __init__(self, *, pages: int = 10, records: int = 100, seed: int = 7, fmt: str = "json",
                 directory: Optional[Union[str, Path]] = None, gzip: bool = False,
                 fail_rate: float = 0.0, reset_rate: float = 0.0, script: Optional[dict] = None,
                 require_headers: Optional[dict] = None, basic_auth: Optional[tuple] = None,
                 port: int = 0):
        check_options(pages, records, fmt, fail_rate, reset_rate)
        self.pages, self.records, self.seed, self.fmt, self.gzip = pages, records, seed, fmt, gzip
        self.content_type = CONTENT_TYPES[fmt]
        self.require_headers = dict(require_headers or {})
        self.basic_auth = tuple(basic_auth) if basic_auth is not None else None
        self._faults = Faults(parse_script(script), fail_rate, reset_rate, seed)
        self._lock = threading.Lock()
        self._connections = set()
        self._thread = None
        self.closed = False
        self.reset_counts()
        self._tempdir = None
        if directory is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="page-server-")
        self.directory = Path(directory if directory is not None else self._tempdir.name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._files, self._packed = write_pages(self.directory, pages, records, seed, fmt, gzip)
            self._httpd = _HTTPServer((HOST, port), self)
        except BaseException:
            self._remove_tempdir()
            raise

    # --- addresses

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def page_url(self) -> str:
        return f"{self.url}/users?page={{page}}"

    # --- life cycle

    def start(self) -> "PageServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(POLL_INTERVAL,),
                                            name="page-server", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self.closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._drop_connections()
        self._httpd.server_close()
        self._remove_tempdir()

    def __enter__(self) -> "PageServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _remove_tempdir(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _drop_connections(self) -> None:
        """End kept-alive connections, so no handler serves on after close()."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- counters

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def requests_by_page(self) -> Counter:
        with self._lock:
            return Counter(self._requests_by_page)

    @property
    def statuses(self) -> Counter:
        """status -> count; "reset" counts connections reset on purpose."""
        with self._lock:
            return Counter(self._statuses)

    @property
    def seen_headers(self) -> list:
        """The header dicts of the last 50 requests, oldest first."""
        with self._lock:
            return list(self._seen_headers)

    def reset_counts(self) -> None:
        """Zero the counters (not the script: a page's used-up actions stay used)."""
        with self._lock:
            self._requests = 0
            self._requests_by_page = Counter()
            self._statuses = Counter()
            self._seen_headers = deque(maxlen=SEEN_HEADERS_KEPT)

    def _note_request(self, page: Optional[int], headers) -> None:
        with self._lock:
            self._requests += 1
            if page is not None:
                self._requests_by_page[page] += 1
            self._seen_headers.append(dict(headers.items()))

    def _note_status(self, status: Union[int, str]) -> None:
        with self._lock:
            self._statuses[status] += 1

    # --- pages

    def _page_body(self, page: int, gzipped: bool) -> Body:
        """The page's file (gzip-compressed if asked), or bytes for a page past the end."""
        files = self._packed if gzipped else self._files
        if page in files:
            return files[page]
        body = empty_page(self.seed, page, self.fmt)
        return gzip_compress(body, mtime=0) if gzipped else body


def check_options(pages: int, records: int, fmt: str, fail_rate: float, reset_rate: float) -> None:
    if pages < 0 or records < 0:
        raise ValueError(f"pages and records must be >= 0, got {pages} and {records}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not (0 <= fail_rate <= 1 and 0 <= reset_rate <= 1 and fail_rate + reset_rate <= 1):
        raise ValueError(f"fail_rate {fail_rate} and reset_rate {reset_rate} must be in [0, 1] "
                         "and add up to at most 1")


# --- Command line ---------------------------------------------------------------------------


def parse_args(argv: Optional[list]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10, help="pages 1..N hold records")
    parser.add_argument("--records", type=int, default=100, help="records per page")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--fmt", choices=FORMATS, default="json")
    parser.add_argument("--gzip", action="store_true", help="gzip pages for Accept-Encoding: gzip")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction answered 500 or 429")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="fraction of requests reset")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", default=None, help="where page files go (default: a temp dir)")
    return parser.parse_args(argv)


def statuses_json(statuses: Counter) -> str:
    return json.dumps({str(status): count for status, count in sorted(statuses.items(), key=str)})


def serve_until_signalled(make, ready, summary) -> int:
    """Serve the server ``make()`` builds until SIGTERM or SIGINT: ``READY <ready(server)>``
    once it accepts connections, then the line ``summary(server)``."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = make()
    with server:
        if not stop.is_set():  # a signal during page generation: stop without a READY line
            print(f"READY {ready(server)}", flush=True)
            stop.wait()
    print(summary(server), flush=True)
    return 0


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    return serve_until_signalled(
        lambda: PageServer(pages=args.pages, records=args.records, seed=args.seed, fmt=args.fmt,
                           directory=args.dir, gzip=args.gzip, fail_rate=args.fail_rate,
                           reset_rate=args.reset_rate, port=args.port),
        lambda server: server.page_url,
        lambda server: f"REQUESTS {server.requests} STATUSES {statuses_json(server.statuses)}")


if __name__ == "__main__":
    sys.exit(main())
