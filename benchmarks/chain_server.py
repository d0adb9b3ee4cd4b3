"""A local JSON API whose pages lead to each other, for tests and benchmarks of chains of
pages (``ingest load URL`` with ``Link`` headers, ``--next-url``, ``--cursor``,
``--cursor-record`` and ``--offset-param``).

Pages 1..``pages`` hold ``records`` records each, randomuser.me-shaped and distinct per page
(as ``page_server``'s). One path per paging style, each shaped like the API it stands for:

- ``/link?page=N``: a bare array (GitHub); ``Link: <...page=N+1>; rel="next"`` but on the
  last page, beside ``rel="prev"`` and ``rel="first"``;
- ``/next?page=N``: ``{"data": [...], "links": {"self": ..., "next": URL or null}}`` (JSON:API);
- ``/cursor[?cursor=cN]``: ``{"ok": true, "members": [...], "response_metadata":
  {"next_cursor": "cN+1" or ""}}`` (Slack);
- ``/stripe[?starting_after=UUID]``: ``{"object": "list", "data": [...], "has_more": bool}``,
  the cursor being the last record's ``login.uuid`` (Stripe's ``id``);
- ``/offset?offset=K&limit=L``: ``{"rows": [...], "total": T}`` (K a multiple of L = records);
- ``/nested?page=N``: ``{"result": {"paging": {"next": URL or null}, "items": [...]}}``.

Next links are relative (``/link?page=2``) unless ``absolute``. ``twist={page: what}`` makes
a page lie: ``"loop:M"`` (its next page is page M), ``"to:URL"`` (its next link is URL),
``"stuck"`` (its cursor is the one it was asked with), ``"shape"`` (its records key is
missing), ``"bad-next"`` (its next is a number).
``script`` works as ``PageServer``'s (500, "reset", ...), and ``hold=N`` holds page N's first
answer until ``release()`` (``held`` is set once it is held): a test kills a process while
the page is in flight, without racing it. ``requests_by_page`` counts requests per page.

    with ChainServer(pages=5, records=10) as server:
        requests.get(server.url + "/link")            # page 1, and a Link to page 2

From a shell (or a benchmark, as a subprocess), it prints ``READY http://127.0.0.1:PORT``
once it accepts connections and serves until SIGTERM or SIGINT::

    .venv/bin/python benchmarks/chain_server.py --pages 100 --records 1000 --dir /tmp/chain
"""

import argparse
import sys
import threading
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_server import PageHandler, PageServer, page_seed, serve_until_signalled  # noqa: E402

from durable_ingest.generate import datasets as generate  # noqa: E402

HOLD_TIMEOUT = 120.0  # a forgotten release() lets the held page go after this long
STYLES = ("link", "next", "cursor", "stripe", "offset", "nested")


class ChainHandler(PageHandler):
    """``GET /<style>?...``: the page it asks for, with what leads to the next one."""

    def do_GET(self):
        app: ChainServer = self.app
        parts = urlsplit(self.path)
        style, query = parts.path.strip("/"), parse_qs(parts.query)
        page = app.page_of(style, query)
        self.app._note_request(page, self.headers)
        if page is None:
            return self.send_json(404, {"error": f"unknown page {self.path}"})
        action = app._faults.next_action(page)
        if action is not None and not self.apply(action, page):
            return None
        app.hold_if_asked(page)
        head, tail, headers = app.envelope(style, page, query)
        self.send_records(page, head, tail, headers)

    def send_records(self, page: int, head: bytes, tail: bytes, headers: dict) -> None:
        body = self.app.records_file(page)
        size = len(head) + body.stat().st_size + len(tail)
        self.app._note_status(200)
        self.send_head(200, size, "application/json", False, headers)
        self.wfile.write(head)
        self.send_body(body)
        self.wfile.write(tail)


class ChainServer(PageServer):
    """A chained JSON API on 127.0.0.1 (see the module's docstring), in a background thread."""

    def __init__(self, *, pages: int = 5, records: int = 10, seed: int = 7,
                 absolute: bool = False, twist: Optional[dict] = None, hold: Optional[int] = None,
                 **kwargs):
        super().__init__(pages=0, records=0, seed=seed, **kwargs)
        self._httpd.RequestHandlerClass = ChainHandler
        self.chain_pages, self.per_page, self.absolute = pages, records, absolute
        self.twist, self.hold = dict(twist or {}), hold
        self.held, self._release = threading.Event(), threading.Event()
        self._last_ids = {}  # login.uuid of a page's last record -> its page
        for number in range(1, pages + 1):
            self._write_records(number)

    def _write_records(self, number: int) -> None:
        rows = generate.generate_records(self.per_page, page_seed(self.seed, number))
        with open(self.records_file(number), "wb") as out:
            for index, record in enumerate(rows):
                out.write((b", " if index else b"") + orjson.dumps(record))
        if self.per_page:
            self._last_ids[record["login"]["uuid"]] = number

    def records_file(self, page: int) -> Path:
        """The page's records, comma-separated (an empty file past the last page)."""
        path = self.directory / f"records-{page:06d}.part"
        if not path.exists():
            path.touch()
        return path

    def release(self) -> None:
        self._release.set()

    def hold_if_asked(self, page: int) -> None:
        if page == self.hold and not self.held.is_set():
            self.held.set()
            self._release.wait(HOLD_TIMEOUT)

    # -- which page a request asks for, and what surrounds its records --------------------
    def page_of(self, style: str, query: dict) -> Optional[int]:
        first = lambda name, default="": query.get(name, [default])[0]  # noqa: E731
        try:
            if style in ("link", "next", "nested"):
                return int(first("page", "1"))
            if style == "cursor":
                return int(first("cursor", "c1")[1:])
            if style == "stripe":
                after = first("starting_after")
                return self._last_ids[after] + 1 if after else 1
            if style == "offset":
                offset, limit = int(first("offset", "0")), int(first("limit", "0"))
                return offset // limit + 1 if limit == self.per_page and offset % limit == 0 else None
        except (KeyError, ValueError, ZeroDivisionError):
            return None
        return None

    def next_page(self, page: int) -> Optional[int]:
        twist = self.twist.get(page, "")
        if twist.startswith("loop:"):
            return int(twist[len("loop:"):])
        return page + 1 if page < self.chain_pages else None

    def link(self, style: str, page: int) -> str:
        away = self.twist.get(page - 1, "")
        if away.startswith("to:"):
            return away[len("to:"):]
        relative = f"/{style}?page={page}"
        return self.url + relative if self.absolute else relative

    def envelope(self, style: str, page: int, query: dict) -> tuple:
        """(bytes before the records, bytes after them, headers) of a page."""
        following, twist = self.next_page(page), self.twist.get(page, "")
        if twist.startswith("to:"):
            following = page + 1
        key = {"link": None, "next": "data", "cursor": "members", "stripe": "data",
               "offset": "rows", "nested": "items"}[style]
        around = self._around(style, page, following, twist, query)
        headers = {}
        if style == "link":
            links = [f'<{self.link(style, 1)}>; rel="first"']
            if following is not None:
                links.append(f'<{self.link(style, following)}>; rel="next"')
            headers["Link"] = ", ".join(links)
        if key is None:
            return b"[", b"]", headers
        if twist == "shape":
            key = "results_were_here"
        if style == "nested":
            around = around["result"]
        head = orjson.dumps(around)[:-1] + (b", " if around else b"") + f'"{key}": ['.encode()
        if style == "nested":
            return b'{"result": ' + head, b"]}}", headers
        return head, b"]}", headers

    def _around(self, style: str, page: int, following: Optional[int], twist: str,
                query: dict) -> dict:
        if style in ("next", "nested"):
            target = self.link(style, following) if following is not None else None
            target = 12345 if twist == "bad-next" else target
            if style == "nested":
                return {"result": {"paging": {"next": target}}}
            return {"links": {"self": self.link(style, page), "next": target}}
        if style == "cursor":
            cursor = query.get("cursor", [""])[0] if twist == "stuck" else \
                f"c{following}" if following is not None else ""
            return {"ok": True, "response_metadata": {"next_cursor": cursor}}
        if style == "stripe":
            return {"object": "list", "has_more": following is not None}
        if style == "offset":
            return {"total": self.chain_pages * self.per_page}
        return {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--records", type=int, default=100, help="records per page")
    parser.add_argument("--dir", default=None, help="where record files go (default: a temp dir)")
    args = parser.parse_args(argv)
    return serve_until_signalled(
        lambda: ChainServer(pages=args.pages, records=args.records, directory=args.dir),
        lambda server: server.url, lambda server: f"REQUESTS {server.requests}")

if __name__ == "__main__":
    sys.exit(main())
