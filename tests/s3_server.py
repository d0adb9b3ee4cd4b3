"""A real S3 server for tests and benchmarks: moto in server mode, in its own process on
127.0.0.1, and a stdlib HTTP proxy in front of it that misbehaves on purpose.

In a test module, import the fixtures by name (pytest finds them there)::

    from s3_server import fault_proxy, moto_server, s3_bucket, s3_env  # noqa: F401

    def test_reads(s3_env, s3_bucket):
        s3_bucket.put("landing/a.json", b"[]")
        ...  # the code under test reads s3://{s3_bucket.name}/landing/ (AWS_ENDPOINT_URL)

- ``moto_server`` (session): one moto process per test process; ``MotoServer`` can also be
  used alone (``with MotoServer() as server: ...``), as the benchmarks do.
- ``s3_env``: the environment of one test: fixed fake keys (``TEST_ACCESS_KEY``,
  ``TEST_SECRET_KEY``), region us-east-1, ``AWS_ENDPOINT_URL`` at the server, and
  ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE`` at empty files, so the developer's own
  ~/.aws never leaks in; every other ``AWS_*`` variable removed, and the EC2 metadata service
  switched off (no request may leave this machine).
- ``s3_bucket``: a new bucket per test (its ``name``, ``put``, ``delete``, an admin
  ``client``), created with boto3 straight on the server, never through the proxy.
- ``fault_proxy``: a ``FaultProxy`` in front of the server for one test: a scripted sequence
  of faults, then a random share of them (500 InternalError, 503 SlowDown, the connection
  reset after the headers or halfway through the body).
"""

import http.client
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Optional
from urllib.parse import urlsplit

import pytest

TEST_ACCESS_KEY = "AKIATESTDURABLEINGEST"
TEST_SECRET_KEY = "tEsT/s3cret+Key-that-must-never-be-shown-0123456"
TEST_REGION = "us-east-1"
START_DEADLINE = 30.0  # seconds for moto's process to accept requests (it imports a lot)
FAULTS = ("500", "503", "reset-headers", "reset-body")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- moto, in its own process ---------------------------------------------------------------------
class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 and a free port; ``url`` once started."""

    def __init__(self, python: str = sys.executable):
        self.python = python
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self._log = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, deadline: float = START_DEADLINE) -> "MotoServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        self.port = free_port()
        self.process = subprocess.Popen(
            [self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)
        self._wait_ready(time.monotonic() + deadline)
        return self

    def _wait_ready(self, until: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited {self.process.returncode}: {self.log()}")
            try:
                self.call("GET", "/moto-api/data.json")
                return
            except OSError:
                if time.monotonic() > until:
                    self.stop()
                    raise RuntimeError(f"moto server not up after the deadline: {self.log()}")
                time.sleep(0.1)

    def call(self, method: str, path: str, body: bytes = b"") -> bytes:
        """A request to moto's own API (``/moto-api/...``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body)
            return connection.getresponse().read()
        finally:
            connection.close()

    def require_auth(self, on: bool) -> None:
        """Switch moto's IAM checks on (every later request must be signed by a key that moto's
        IAM knows, and be allowed by its policies) or off (anything goes: the default)."""
        self.call("POST", "/moto-api/reset-auth", b"0" if on else b"inf")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> "MotoServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def admin_client(endpoint: str, access_key: str = TEST_ACCESS_KEY,
                 secret_key: str = TEST_SECRET_KEY, service: str = "s3"):
    """A boto3 client with explicit keys, for setting up what a test reads."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=TEST_REGION, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))


class TestBucket:
    """A bucket made for one test, and what the test puts in it."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, endpoint: str, versioned: bool = False):
        self.client = admin_client(endpoint)
        self.name = f"test-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=self.name)
        if versioned:
            self.versioning(True)

    def versioning(self, on: bool) -> None:
        self.client.put_bucket_versioning(
            Bucket=self.name, VersioningConfiguration={"Status": "Enabled" if on else "Suspended"})

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, body: bytes) -> dict:
        """Put one object; its ``ETag`` and (in a versioned bucket) ``VersionId``."""
        return self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def put_many(self, keys: Iterable[str], body: bytes = b"{}\n") -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: self.put(key, body), keys))

    def delete(self, key: str, version_id: Optional[str] = None) -> None:
        extra = {"VersionId": version_id} if version_id else {}
        self.client.delete_object(Bucket=self.name, Key=key, **extra)


# -- faults, in front of it -----------------------------------------------------------------------
class FaultProxy:
    """An HTTP proxy to ``upstream`` that answers some requests with a fault instead.

    ``script`` faults go to the next requests in order (``None`` passes one request through);
    after that, each request gets a fault from ``kinds`` with probability ``share`` (seeded).
    A fault is one of ``FAULTS`` or an error to answer, ``(status, code, message)``.
    ``only`` limits faults to requests whose method and path-and-query contain it, say
    ``"GET /bucket/key"``. ``served`` counts what was answered: the faults and ``"ok"``;
    ``seen`` lists every request as ``(method, path, Range, If-Match)``.
    """

    def __init__(self, upstream: str, share: float = 0.0, kinds: Iterable[str] = FAULTS,
                 seed: int = 0, script: Iterable[Optional[str]] = (), only: str = ""):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.share, self.kinds, self.only = share, tuple(kinds), only
        self.script = deque(script)
        self.served: Counter = Counter()
        self.seen: list = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, method: str, path: str, headers) -> Optional[str]:
        with self._lock:
            self.seen.append((method, path, headers.get("Range"), headers.get("If-Match")))
            if self.only and self.only not in f"{method} {path}":
                fault = None
            elif self.script:
                fault = self.script.popleft()
            elif self.share and self._random.random() < self.share:
                fault = self._random.choice(self.kinds)
            else:
                fault = None
            self.served[fault if isinstance(fault, str) else "error" if fault else "ok"] += 1
            return fault

    @property
    def faults(self) -> int:
        return sum(n for what, n in self.served.items() if what != "ok")

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_ERRORS = {"500": (500, "InternalError", "We encountered an internal error. Please try again."),
           "503": (503, "SlowDown", "Please reduce your request rate.")}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "proxy-connection", "te", "upgrade"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real S3 endpoint
    disable_nagle_algorithm = True  # else headers then body wait ~40 ms for a delayed ACK

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.server.proxy.fault_for(self.command, self.path, self.headers)
        if isinstance(fault, tuple) or fault in _ERRORS:
            return self._error(*(fault if isinstance(fault, tuple) else _ERRORS[fault]))
        status, headers, payload = self._forward(body)
        length = headers.get("content-length") if self.command == "HEAD" else str(len(payload))
        self.send_response_only(status)
        for name, value in headers.items():
            if name not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        if fault == "reset-headers":
            return self._reset()
        self.wfile.write(payload[:len(payload) // 2] if fault == "reset-body" else payload)
        if fault == "reset-body":
            self._reset()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _forward(self, body: bytes) -> tuple:
        """The upstream's answer, with the request's own Host header kept (it is signed)."""
        connection = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=60)
        try:
            connection.putrequest(self.command, self.path, skip_host=True,
                                  skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        finally:
            connection.close()

    def _error(self, status: int, code: str, message: str) -> None:
        payload = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                   f"<Message>{message}</Message></Error>").encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the peer sees a connection reset, not a clean end (after
        a moment, so that what was sent has arrived and can be read before the reset)."""
        self.wfile.flush()
        time.sleep(0.05)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_server():
    try:
        import moto.server  # noqa: F401
    except ImportError:
        from conftest import skip_unless_ci

        skip_unless_ci("moto[server] is not installed: pip install -e '.[dev]'")
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_env(moto_server, monkeypatch, tmp_path):
    """This test's AWS environment: fake fixed keys, nothing of the developer's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    (tmp_path / "aws-config").write_text("")
    (tmp_path / "aws-credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", TEST_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return moto_server


@pytest.fixture
def s3_bucket(moto_server):
    return TestBucket(moto_server.url)


@pytest.fixture
def fault_proxy(moto_server):
    with FaultProxy(moto_server.url) as proxy:
        yield proxy
