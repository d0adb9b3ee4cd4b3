"""Incremental loads (issue 31, item 3): ``--incremental FIELD`` with ``{since}`` or
``--since-param``, ``--since-initial``, the stored value moved only by a finished run's last
transaction, a run killed before its records commit, ``ingest status``, option conflicts, and
the comparison of values (instants, numbers, text), against a real HTTP server on 127.0.0.1
whose records change between runs, and the real CLI."""

import json
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, strategies as st

from conftest import answer_json, kill_9, run_ingest, start_ingest, wait_until
from durable_ingest.sources.since import (INSTANT, NUMBER, TEXT, Highest, is_higher, new_value,
                                          typed, value_of)


class ChangingApi:
    """An API of records that change between runs: ``GET /items?PARAM=VALUE`` (or a path
    ending ``/since/VALUE``) answers ``{"data": [...]}``, the records whose ``field`` is at
    least VALUE (compared as ``order`` says), all of them without one. ``asked`` lists the
    values asked from (None: none), request by request."""

    def __init__(self, field: str = "updated_at", param: str = "since", order=str):
        self.records: dict = {}
        self.field, self.param, self.order = field, param, order
        self.asked: list = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                since = parse_qs(parts.query).get(api.param, [None])[0]
                if "/since/" in parts.path:
                    since = parts.path.rpartition("/since/")[2]
                api.asked.append(since)
                answer_json(self, json.dumps({"data": api.answer(since)}).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, since) -> list:
        from urllib.parse import unquote

        rows = sorted(self.records.values(), key=lambda r: self.order(r[self.field]))
        if since is None:
            return rows
        since = self.order(unquote(since))
        return [r for r in rows if self.order(r[self.field]) >= since]

    def put(self, *records) -> None:
        for record in records:
            self.records[record["id"]] = record

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def item(number: int, minutes: int, name: str = "") -> dict:
    return {"id": number, "updated_at": at(minutes), "name": name or f"item {number}"}


def load(cli, backend, *args, code=0):
    result = cli("load", *args, "--json", env=backend.env())
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1]) if code == 0 else result


def stored(backend, run_id=None) -> dict:
    rows = backend.query("select data from tasks")
    return {r["id"]: r for r in (json.loads(d) if isinstance(d, str) else d for (d,) in rows)}


def cursor(backend) -> list:
    return [tuple(r) for r in backend.query(
        "select field, value, value_type, run_id from ingest_cursors")]


def status_json(cli, backend, run_id) -> dict:
    result = cli("status", run_id, "--json", env=backend.env())
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


SYNC = ["--records", "data", "--incremental", "updated_at", "--key", "id",
        "--on-conflict", "update"]


def test_three_runs_miss_nothing_and_double_nothing(cli, backend):
    with ChangingApi(order=instant) as api:
        api.put(*(item(n, n) for n in range(1, 6)))
        url = f"{api.url}/items?since={{since}}"
        first = load(cli, backend, url, *SYNC, "--since-initial", "2025-12-31T00:00:00Z")
        api.put(item(6, 6), item(7, 7), item(3, 10, "item 3, renamed"))
        second = load(cli, backend, url, *SYNC)
        api.put(item(8, 11))
        third = load(cli, backend, url, *SYNC)
        fourth = load(cli, backend, url, *SYNC)  # nothing new: the last record comes again

    assert api.asked == ["2025-12-31T00:00:00Z", at(5), at(10), at(11)]
    # Records equal to the value come again (>=): the key keeps them single (updated in
    # place, as --on-conflict update says; item 5 in the second run, item 8 in the fourth).
    assert [s["tasks"] for s in (first, second, third, fourth)] == [5, 2, 1, 0]
    assert [s["updated"] for s in (first, second, third, fourth)] == [0, 2, 1, 1]
    rows = stored(backend)
    assert sorted(rows) == list(range(1, 9))
    assert rows[3]["name"] == "item 3, renamed" and rows[3]["updated_at"] == at(10)
    assert backend.counts() == (8, 0)
    [(field, value, kind, run_id)] = cursor(backend)
    assert (field, value, kind, run_id) == ("updated_at", at(11), INSTANT, third["run_id"])
    assert second["incremental"] == {"field": "updated_at", "used": at(5), "new": at(10)}
    detail = status_json(cli, backend, second["run_id"])
    assert detail["incremental"] == {"field": "updated_at", "used": at(5), "new": at(10)}
    text = cli("status", second["run_id"], env=backend.env()).output
    assert f"incremental updated_at: asked from {at(5)}; the next run asks from {at(10)}" in text


def test_since_param_numbers_and_no_initial_value(cli, sqlite_backend):
    with ChangingApi(field="id", param="after", order=Decimal) as api:
        api.put(*({"id": n} for n in (1, 2, 9)))
        args = [f"{api.url}/items", "--records", "data", "--incremental", "id",
                "--since-param", "after", "--key", "id"]
        load(cli, sqlite_backend, *args)
        api.put({"id": 10}, {"id": 12345678901234567890123})  # 9 < 10 as numbers, not text
        load(cli, sqlite_backend, *args)
        load(cli, sqlite_backend, *args)

    # No value yet: the parameter is not sent at all.
    assert api.asked == [None, "9", "12345678901234567890123"]
    assert cursor(sqlite_backend)[0][1:3] == ("12345678901234567890123", NUMBER)
    assert sqlite_backend.counts() == (5, 0)


def test_a_since_placeholder_in_the_path_and_text_values(cli, sqlite_backend):
    with ChangingApi(field="code", order=str) as api:
        api.put({"id": 1, "code": "b"}, {"id": 2, "code": "a9"})
        url = f"{api.url}/items/since/{{since}}"
        args = [url, "--records", "data", "--incremental", "code", "--key", "id"]
        first = load(cli, sqlite_backend, *args, "--since-initial", "a")
        api.put({"id": 3, "code": "ba"})
        load(cli, sqlite_backend, *args)

    assert api.asked == ["a", "b"]
    assert first["tasks"] == 2 and sqlite_backend.counts() == (3, 0)
    assert cursor(sqlite_backend)[0][1:3] == ("ba", TEXT)


def test_records_that_go_to_errors_do_not_move_the_value(cli, sqlite_backend):
    with ChangingApi(order=instant) as api:
        api.put(item(1, 1), {"id": None, "updated_at": at(9), "name": "no key"})
        summary = load(cli, sqlite_backend, f"{api.url}/x?since={{since}}", *SYNC,
                       "--since-initial", at(0))
    assert summary["errors"] == 1
    assert sqlite_backend.counts() == (1, 1)
    assert cursor(sqlite_backend)[0][1] == at(1)


@pytest.mark.slow
def test_a_run_killed_before_commit_moves_nothing_then_finishes_from_its_value(
        backend, workdir, parking):
    with ChangingApi(order=instant) as api:
        api.put(*(item(n, n) for n in range(1, 4)))
        args = ["load", f"{api.url}/items?since={{since}}", *SYNC, "--json"]
        first = run_ingest(*args, "--since-initial", at(0), env=backend.env(), cwd=workdir)
        assert first.returncode == 0, first.stderr
        api.put(item(4, 4), item(5, 5))
        process = start_ingest(*args, env={**backend.env(), **parking.env(at="commit")},
                               cwd=workdir)
        parking.wait_parked(index=0, process=process)
        assert kill_9(process) == -9
        assert cursor(backend)[0][1] == at(3)  # its records never committed: nothing moved
        api.put(item(6, 6))  # a run that started again would ask from 5 and miss nothing...
        again = run_ingest(*args, env=backend.env(), cwd=workdir)
        assert again.returncode == 0, again.stderr
        last = run_ingest(*args, env=backend.env(), cwd=workdir)  # ...and the next does
        assert last.returncode == 0, last.stderr

    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["incremental"] == {"field": "updated_at", "used": at(3), "new": at(5)}
    assert set(api.asked[1:]) <= {at(3), at(5)} and api.asked[-1] == at(5)
    assert at(3) in api.asked[1:-1]  # the killed run, resumed, asked from its own value
    assert backend.counts() == (6, 0)
    assert summary["run_id"] != json.loads(first.stdout.strip().splitlines()[-1])["run_id"]
    assert cursor(backend)[0][1] == at(6)


@pytest.mark.parametrize("args, says", [
    (["{api}/x", "--since-param", "s"], "--since-param needs --incremental FIELD"),
    (["{api}/x", "--since-initial", "0"], "--since-initial needs --incremental FIELD"),
    (["{api}/x?s={{since}}"], "a {since} placeholder needs --incremental FIELD"),
    (["local.json", "--incremental", "id", "--since-param", "s"], "for one URL input alone"),
    (["{api}/x", "{api}/y", "--incremental", "id", "--since-param", "s"],
     "for one URL input alone"),
    (["{api}/x", "--incremental", "id"], "needs {since} in the URL or --since-param NAME"),
    (["{api}/x", "--incremental", "a..b", "--since-param", "s"], "expected a field name"),
    (["{api}/x?s={{since}}", "--incremental", "id"], "no value for {since} yet"),
])
def test_bad_combinations_are_one_line_exit_2(cli, sqlite_backend, workdir, args, says):
    (workdir / "local.json").write_text('[{"id": 1}]')
    with ChangingApi() as api:
        result = cli("load", *(a.format(api=api.url) for a in args), env=sqlite_backend.env())
        assert api.asked == []
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and says in line, line


# -- the values, compared ------------------------------------------------------------------------
def test_values_are_typed_and_compared_by_type():
    assert value_of({"a": {"b": "2026-01-01T00:00:00+02:00"}}, ("a", "b"))[0] == INSTANT
    assert value_of({"a": "2026-01-01"}, ("a",)) == (INSTANT, "2026-01-01")
    assert value_of({"a": "20260101"}, ("a",)) == (TEXT, "20260101")
    assert value_of({"a": 1.10}, ("a",)) == (NUMBER, "1.1")
    assert value_of({"a": Decimal("0.12345678901234567890")}, ("a",)) == (
        NUMBER, "0.12345678901234567890")
    assert [value_of({"a": v}, ("a",)) for v in (True, None, [], {}, float("nan"))] == [None] * 5
    assert value_of({}, ("a",)) is None
    # An instant 2 hours east is earlier; a naive one is UTC.
    assert is_higher(INSTANT, "2026-01-01T09:00:00Z", "2026-01-01T10:00:00+02:00")
    assert not is_higher(INSTANT, "2026-01-01T09:00:00", "2026-01-01T09:00:00Z")
    assert is_higher(NUMBER, "10", "9") and is_higher(TEXT, "9", "10")
    assert typed("2026-01-01T00:00:00Z")[0] == INSTANT and typed("-1.5e3")[0] == NUMBER
    assert typed("abc")[0] == TEXT
    # The stored value's type decides; records of another type move nothing.
    assert new_value((NUMBER, "5"), {TEXT: "zzz", NUMBER: "4"}) == (NUMBER, "5")
    assert new_value((), {TEXT: "zzz", NUMBER: "4", INSTANT: at(1)}) == (INSTANT, at(1))
    assert new_value((), None) == ()
    # --since-initial 0 with text ids: the records' type, not the command line's, decides.
    assert new_value((NUMBER, "0"), {TEXT: "b7"}, given=True) == (TEXT, "b7")
    assert new_value((NUMBER, "0"), {TEXT: "b7", NUMBER: "3"}, given=True) == (NUMBER, "3")
    assert new_value((NUMBER, "5"), {}, given=True) == (NUMBER, "5")


instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5)),
                                                   timezone(timedelta(hours=-8, minutes=-30))]))
numbers = st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False),
                    st.floats(allow_nan=False, allow_infinity=False))


@given(st.lists(instants, min_size=1))
def test_the_highest_instant_is_the_latest_whatever_its_offset(moments):
    highest = Highest()
    for moment in moments:
        highest.add(value_of({"t": moment.isoformat()}, ("t",)))
    assert instant(highest.as_dict()[INSTANT]) == max(moments)


@given(st.lists(numbers, min_size=1), st.randoms())
def test_the_highest_number_is_exact_and_order_free(values, random):
    shuffled = list(values)
    random.shuffle(shuffled)
    found = [Highest(), Highest()]
    for highest, order in zip(found, (values, shuffled)):
        for value in order:
            highest.add(value_of({"n": value}, ("n",)))
    expected = max(Decimal(repr(v)) if isinstance(v, float) else Decimal(v) for v in values)
    assert Decimal(found[0].as_dict()[NUMBER]) == expected
    assert Decimal(found[1].as_dict()[NUMBER]) == expected


@given(st.lists(st.text(), min_size=1), st.lists(st.text(), min_size=1))
def test_merging_highests_is_the_highest_of_all(left, right):
    def of(texts):
        highest = Highest()
        for text in texts:
            highest.add((TEXT, text))
        return highest

    assert of(left).merge(of(right).as_dict()).as_dict() == of(left + right).as_dict()
    assert of(left + right).as_dict()[TEXT] == max(left + right)


@pytest.mark.slow
def test_a_schedule_makes_a_nightly_sync_of_one_line(cli, sqlite_backend, workdir):
    """``schedule add`` takes ``--incremental`` as ``load`` does; each tick asks from the
    value the last finished run left."""
    backend = sqlite_backend

    def done(rows: int):
        runs = json.loads(run_ingest("status", "--json", env=backend.env(), cwd=workdir).stdout)
        return backend.rows_so_far() == rows and runs and all(r["state"] == "done" for r in runs)

    with ChangingApi(order=instant) as api:
        api.put(*(item(n, n) for n in range(1, 4)))
        added = cli("schedule", "add", "nightly", "0 2 * * *", f"{api.url}/items", *SYNC,
                    "--since-param", "since", env=backend.env())
        assert added.exit_code == 0, added.output
        worker = start_ingest("worker", "--worker-id", "w1", cwd=workdir,
                              env={**backend.env(), "INGEST_SCHEDULE_POLL_SEC": "0.5"})
        for rows, new in ((3, [item(4, 4)]), (4, [item(5, 5), item(2, 9, "item 2, renamed")])):
            assert cli("schedule", "run", "nightly", env=backend.env()).exit_code == 0
            wait_until(lambda: done(rows), 60, f"a run of {rows} rows", process=worker,
                       interval=0.3)
            api.put(*new)
        assert cli("schedule", "run", "nightly", env=backend.env()).exit_code == 0
        wait_until(lambda: done(5) and cursor(backend)[0][1] == at(9), 60, "the third run",
                   process=worker, interval=0.3)
        worker.terminate()
        worker.communicate(timeout=60)

    assert api.asked == [None, at(3), at(4)]
    assert stored(backend)[2]["name"] == "item 2, renamed"
