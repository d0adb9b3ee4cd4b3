"""How fast is ``ingest load`` next to a hand-written COPY loader and to Postgres alone, and how
much memory does it use?

    python benchmarks/bench.py [--records 100000] [--repeats 3] [--formats ndjson,array,envelope]
                               [--sqlite] [--per-record 2000] [--rss-records 0]
                               [--pg postgresql://postgres@127.0.0.1:5432] [--out DIR] [--smoke]

For each format, the same generated file (``ingest generate --count N --seed 7``) is loaded
``--repeats`` times by ``benchmarks/baseline_copy.py`` and by ``ingest load FILE --json``,
alternately, each into fresh Postgres databases. Every run is its own process, timed from
process start to exit and measured for peak RSS (``/usr/bin/time -f %M``). The report gives
median records/s of both, their ratio (ingest / baseline) and ingest's peak RSS; the last
line is ``RATIO <min ratio over formats>``. Between them, ``postgres_alone.py`` loads the
baseline's rows already encoded as COPY text (no Python per record): the limit, and "of
limit" is ingest / Postgres alone.

Every run's CPU seconds are measured too (the loader's process, and the Postgres server's
when it runs on this machine), reported per 100,000 records.

Options add: ``--sqlite`` the same loads on ingest's zero-set-up SQLite default, alternating
with ``sqlite_alone.py`` (the same encoded rows, one executemany: SQLite's limit);
``--per-record N`` the one-workflow-per-record reference shape (``per_record.py``);
``--rss-records N`` one load of an N-record NDJSON file, for its peak RSS. ``--smoke`` is a
tiny run for the test suite (300 records, one format, one repeat).

Progress goes to stderr, the report to stdout. Data files are kept in ``--out`` (default
``benchmarks/out``, git-ignored) and reused: the same (count, seed) always gives the same bytes.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEED = 7
FORMATS = ("ndjson", "array", "envelope")
GNU_TIME = "/usr/bin/time"
# The baseline uppercases every string value: ingest does the same work (not its default).
SAME_WORK = ("--transform", "uppercase")
DEFAULTS = {"records": 100_000, "repeats": 3, "formats": "ndjson,array,envelope",
            "per_record": 2000, "rss_records": 0}
SMOKE = {"records": 300, "repeats": 1, "formats": "ndjson", "per_record": 20, "rss_records": 0}
# Settings of the developer's shell that would change what is measured (targets, exporters).
SCRUBBED_ENV = ("DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL", "DBOS__VMID", "INGEST_SPOOL_DIR")

# Used when /usr/bin/time is missing: run the command, write the children's peak RSS (KiB)
# and CPU seconds (user, system). A process of its own per run, because RUSAGE_CHILDREN is a
# maximum over every child ever.
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}')\n"
    "sys.exit(rc)\n"
)


class BenchError(Exception):
    """The benchmark can't go on; the message says why."""


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- measuring one process ----------------------------------------------------------------
@dataclass
class Run:
    seconds: float  # wall clock, process start to exit
    rss_mb: float  # peak resident set of the process and its children
    stdout: str
    cpu_s: float = 0.0  # user + system CPU of the process and its children
    server_cpu_s: Optional[float] = None  # of the Postgres server meanwhile, when it is local

    def result(self) -> dict:
        """The JSON object a loader prints on its last line."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def measure(cmd: list, *, env: dict, cwd: Path) -> Run:
    """Run ``cmd`` to completion; its wall time, peak RSS and CPU time (and the local
    Postgres server's CPU time meanwhile), or BenchError if it failed."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss", dir=cwd) as rss_file:
        if os.access(GNU_TIME, os.X_OK):
            wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", rss_file.name, *cmd]
        else:
            wrapped = [sys.executable, "-c", RSS_WRAPPER, rss_file.name, *cmd]
        server_before = server_cpu()
        began = time.perf_counter()
        proc = subprocess.run(wrapped, env=env, cwd=cwd, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise BenchError(f"`{' '.join(map(str, cmd))}` exited {proc.returncode}:\n{tail}")
        # GNU time writes "Command exited with non-zero status" first on failure; the numbers last.
        rss_kib, user, system = Path(rss_file.name).read_text().split()[-3:]
    return Run(seconds, int(rss_kib) / 1024, proc.stdout, float(user) + float(system),
               server_cpu_since(server_before))


def server_cpu() -> Optional[float]:
    """CPU seconds of this machine's Postgres server: its postmaster's own and its exited
    children's (a load's backends exit when its connections close). None when there is no
    local server to read (another machine's, or /proc unreadable)."""
    try:
        pid = subprocess.run(["pgrep", "-o", "-x", "postgres"], capture_output=True,
                             text=True).stdout.split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu_since(before: Optional[float]) -> Optional[float]:
    if before is None:
        return None
    time.sleep(0.5)  # the postmaster reaps the run's backends just after they exit
    after = server_cpu()
    return None if after is None else after - before


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in SCRUBBED_ENV and not k.startswith("OTEL_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(command: list) -> Iterator[str]:
    """A server in a process of its own that prints ``READY <address>`` once it serves (the
    page servers beside this file); yields the address, and stops it (SIGTERM) after."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            raise BenchError(f"{Path(command[1]).name} did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        process.terminate()
        tail = process.communicate(timeout=60)[0].strip()
        if tail:
            log(f"  server: {tail}")


def server_and_out_options(parser) -> None:
    """``--pg`` (INGEST_TEST_PG, else this machine's server) and ``--out`` (benchmarks/out),
    as the scripts beside this one take them."""
    parser.add_argument("--pg", default=os.environ.get("INGEST_TEST_PG", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--out", type=Path, default=HERE / "out")


def ingest_command() -> list:
    """The installed ``ingest`` script of this interpreter's environment, as a user runs it."""
    script = Path(sys.executable).parent / "ingest"
    if script.exists():
        return [str(script)]
    found = shutil.which("ingest")
    return [found] if found else [sys.executable, "-m", "durable_ingest.cli"]


# -- Postgres -------------------------------------------------------------------------------
class Postgres:
    """Fresh databases on one server, created before a run and dropped after it."""

    def __init__(self, server: str):
        import psycopg

        self.psycopg = psycopg
        self.server = server.rstrip("/")

    def url(self, database: str) -> str:
        return f"{self.server}/{database}"

    def admin(self, sql: str) -> None:
        with self.psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def admin_on(self, database: str, sql: str) -> None:
        with self.psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def scalar(self, database: str, sql: str):
        with self.psycopg.connect(self.url(database), connect_timeout=10) as conn:
            return conn.execute(sql).fetchone()[0]

    def version(self) -> str:
        try:
            return self.scalar("postgres", "SHOW server_version")
        except self.psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise BenchError(f"Postgres is not reachable at {self.server} ({reason}); "
                             "start it or pass --pg postgresql://USER@HOST:PORT") from None

    @contextlib.contextmanager
    def fresh(self, *roles: str) -> Iterator[list]:
        """New empty databases, one per role; always dropped afterwards."""
        tag = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        names = [f"{tag}_{role}" for role in roles]
        try:
            for name in names:
                self.admin(f'CREATE DATABASE "{name}"')
            yield names
        finally:
            for name in names:
                self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- data -----------------------------------------------------------------------------------
def dataset(out: Path, count: int, shape: str) -> Path:
    """The generated file of ``count`` records in ``shape``, made once and reused."""
    stem = out / f"users-{count}-seed{SEED}"
    path = {"ndjson": stem.with_suffix(".ndjson"), "envelope": stem.with_suffix(".json"),
            "array": stem.with_suffix(".array.json")}[shape]
    if path.exists():
        return path
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # concurrent runs don't collide
    began = time.perf_counter()
    if shape == "array":
        ndjson_to_array(dataset(out, count, "ndjson"), partial)
    else:
        fmt = "ndjson" if shape == "ndjson" else "json"
        subprocess.run([*ingest_command(), "generate", "--count", str(count), "--seed", str(SEED),
                        "--format", fmt, "-o", str(partial)],
                       check=True, env=child_env(), stderr=subprocess.DEVNULL)
    partial.replace(path)  # only a complete file gets the final name
    log(f"  generated {path.name} ({path.stat().st_size / 1e6:,.1f} MB) "
        f"in {time.perf_counter() - began:.1f} s")
    return path


def ndjson_to_array(source: Path, target: Path) -> None:
    """The bare-array shape, streamed line by line. ``generate`` yields the same records, in
    the same order, for a seed in both formats, so this is the envelope's ``results``."""
    with open(source, "rb") as lines, open(target, "wb") as out:
        out.write(b"[")
        separator = b""
        for line in lines:
            line = line.rstrip(b"\r\n")
            if line.strip():
                out.write(separator + line)
                separator = b", "
        out.write(b"]\n")


# -- the loaders ----------------------------------------------------------------------------
@dataclass
class Sample:
    records: int
    seconds: float
    rss_mb: float
    inside_rate: Optional[float] = None  # records/s the process reports about itself
    cpu_s: float = 0.0  # the loader's CPU seconds (its process and children)
    server_cpu_s: Optional[float] = None  # the local Postgres server's, meanwhile

    @property
    def rate(self) -> float:
        return self.records / self.seconds


@dataclass
class Bench:
    pg: Postgres
    out: Path
    scratch: Path
    samples: dict = field(default_factory=dict)  # (format, loader) -> [Sample]
    work: tuple = SAME_WORK  # ingest's options: the baseline's work, or () for its defaults

    def add(self, fmt: str, loader: str, sample: Sample) -> None:
        self.samples.setdefault((fmt, loader), []).append(sample)
        inside = f", {sample.inside_rate:,.0f} rec/s inside" if sample.inside_rate else ""
        log(f"  {fmt:<8} {loader:<9} {sample.seconds:7.2f} s  {sample.rate:9,.0f} rec/s  "
            f"{sample.rss_mb:6.0f} MB{inside}")

    def baseline(self, path: Path, shape: str, records: int) -> Sample:
        with self.pg.fresh("base") as (db,):
            run = measure([sys.executable, str(HERE / "baseline_copy.py"), str(path),
                           "--shape", shape, "--url", self.pg.url(db)],
                          env=child_env(), cwd=self.scratch)
            rows = self.pg.scalar(db, "SELECT count(*) FROM baseline_tasks")
        expect(rows == records == run.result()["records"],
               f"baseline loaded {rows} rows of {records} from {path}")
        return sample_of(run, records, records / max(run.result()["elapsed_s"], 1e-9))

    def postgres_alone(self, path: Path, shape: str, records: int) -> Sample:
        """The limit: the baseline's rows, encoded once (untimed), streamed by COPY alone."""
        rows = self.encoded(path, shape)
        with self.pg.fresh("alone") as (db,):
            run = measure([sys.executable, str(HERE / "postgres_alone.py"), str(rows),
                           "--url", self.pg.url(db)], env=child_env(), cwd=self.scratch)
            count = self.pg.scalar(db, "SELECT count(*) FROM baseline_tasks")
        expect(count == records == run.result()["records"],
               f"postgres_alone loaded {count} rows of {records} from {rows}")
        return sample_of(run, records, records / max(run.result()["elapsed_s"], 1e-9))

    def sqlite_alone(self, path: Path, shape: str, records: int) -> Sample:
        """SQLite's limit: the same encoded rows, one executemany in one transaction."""
        rows = self.encoded(path, shape)
        workdir = Path(tempfile.mkdtemp(prefix="sqlite-alone-", dir=self.out))
        try:
            run = measure([sys.executable, str(HERE / "sqlite_alone.py"), str(rows),
                           "--db", str(workdir / "alone.sqlite")], env=child_env(), cwd=workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        expect(run.result()["records"] == records, f"sqlite_alone loaded {run.result()} of {records}")
        return sample_of(run, records, records / max(run.result()["elapsed_s"], 1e-9))

    def encoded(self, path: Path, shape: str) -> Path:
        """The baseline's rows of ``path`` as COPY text, written once (untimed) and kept."""
        rows = path.with_suffix(path.suffix + ".copy")
        if not rows.exists():
            subprocess.run([sys.executable, str(HERE / "postgres_alone.py"), str(path),
                            "--encode", "--shape", shape, "--out", str(rows)], check=True,
                           env=child_env(), capture_output=True)
        return rows

    def warm_up(self, env: dict, cwd: Path) -> None:
        """Set the databases up as a user's first load would (alembic's tables, DBOS's system
        tables), untimed, then empty the tables: the timed run is a load into an existing
        installation, as the baseline's is a load into an existing server. A new
        installation's one-time set-up costs about 2 s more (see README)."""
        tiny = dataset(self.out, 20, "ndjson")
        run = subprocess.run([*ingest_command(), "load", str(tiny), "--json", "--label",
                              uuid.uuid4().hex], env=env, cwd=cwd, capture_output=True, text=True)
        expect(run.returncode == 0, f"warm-up load failed: {run.stderr.strip()[-300:]}")

    def ingest_postgres(self, path: Path, records: int) -> Sample:
        with self.pg.fresh("app", "sys") as (app, system):
            env = child_env(DATABASE_URL=self.pg.url(app),
                            DBOS_SYSTEM_DATABASE_URL=self.pg.url(system))
            self.warm_up(env, self.scratch)
            self.pg.admin_on(app, "TRUNCATE tasks, errors")
            run = measure([*ingest_command(), "load", str(path), "--json", *self.work], env=env,
                          cwd=self.scratch)
            rows = self.pg.scalar(app, "SELECT count(*) FROM tasks")
        return self._checked(run, rows, path, records)

    def ingest_sqlite(self, path: Path, records: int) -> Sample:
        workdir = Path(tempfile.mkdtemp(prefix="sqlite-", dir=self.out))
        try:
            self.warm_up(child_env(), workdir)
            with contextlib.closing(sqlite3.connect(workdir / "durable_ingest_app.sqlite")) as db:
                db.execute("DELETE FROM tasks")
                db.commit()
            run = measure([*ingest_command(), "load", str(path), "--json", *self.work],
                          env=child_env(), cwd=workdir)
            with contextlib.closing(sqlite3.connect(workdir / "durable_ingest_app.sqlite")) as db:
                rows = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return self._checked(run, rows, path, records)

    @staticmethod
    def _checked(run: Run, rows: int, path: Path, records: int) -> Sample:
        summary = run.result()
        expect(summary["records"] == records and summary["tasks"] == rows == records
               and summary["errors"] == 0 and not summary.get("already_loaded"),
               f"ingest load of {path} did not load every record once: {summary}, {rows} rows")
        return sample_of(run, records, summary["records_per_s"])

    def per_record(self, path: Path, records: int) -> Sample:
        with self.pg.fresh("app", "sys") as (app, system):
            run = measure([sys.executable, str(HERE / "per_record.py"), str(path),
                           "--url", self.pg.url(app), "--system-url", self.pg.url(system)],
                          env=child_env(), cwd=self.scratch)
            rows = self.pg.scalar(app, "SELECT count(*) FROM per_record_tasks")
        expect(rows == records, f"per_record.py wrote {rows} rows of {records}")
        return sample_of(run, records, records / max(run.result()["elapsed_s"], 1e-9))


def sample_of(run: Run, records: int, inside_rate: Optional[float]) -> Sample:
    return Sample(records, run.seconds, run.rss_mb, inside_rate, run.cpu_s, run.server_cpu_s)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


# -- the report -----------------------------------------------------------------------------
def median_rate(samples: list) -> float:
    return statistics.median(s.rate for s in samples)


def report(bench: Bench, args, formats: list, context: dict) -> float:
    """Print the results; return the minimum ingest/baseline ratio over formats."""
    print(f"# durable-ingest benchmark, {context['date']}")
    print(f"# command: {context['command']}")
    print(f"# {context['machine']}, product source {context['source']}")
    if context.get("warning"):
        print(f"# {context['warning']}")
    print(f"# load average before {context['load_before']}, after {context['load_after']}"
          " (other work on the machine makes these numbers noisy)")
    print(f"# {args.records:,} records per file, seed {SEED}, {args.repeats} run(s) per loader "
          "and format; rec/s = records / wall time from process start to exit (median); ingest "
          + ("with its default options" if args.defaults else "with --transform uppercase"))
    print()
    header = (f"{'format':<9} {'baseline rec/s':>14} {'ingest rec/s':>12} {'ratio':>6} "
              f"{'pg alone rec/s':>14} {'of limit':>8} "
              f"{'ingest peak RSS MB':>18} {'baseline RSS MB':>15}")
    if args.sqlite:
        header += (f" {'sqlite rec/s':>12} {'sqlite RSS MB':>13} {'sqlite alone rec/s':>18} "
                   f"{'of sqlite limit':>15}")
    print(header)
    ratios = []
    for fmt in formats:
        base, ing = bench.samples[(fmt, "baseline")], bench.samples[(fmt, "ingest")]
        alone = bench.samples[(fmt, "pg-alone")]
        ratio = median_rate(ing) / median_rate(base)
        ratios.append(ratio)
        line = (f"{fmt:<9} {median_rate(base):>14,.0f} {median_rate(ing):>12,.0f} {ratio:>6.2f} "
                f"{median_rate(alone):>14,.0f} {median_rate(ing) / median_rate(alone):>8.2f} "
                f"{max(s.rss_mb for s in ing):>18.0f} {max(s.rss_mb for s in base):>15.0f}")
        if args.sqlite:
            lite, lite_alone = bench.samples[(fmt, "sqlite")], bench.samples[(fmt, "sqlite-alone")]
            line += (f" {median_rate(lite):>12,.0f} {max(s.rss_mb for s in lite):>13.0f} "
                     f"{median_rate(lite_alone):>18,.0f} "
                     f"{median_rate(lite) / median_rate(lite_alone):>15.2f}")
        print(line)
    print()
    print(cpu_lines(bench, formats, args.sqlite))
    per_record = bench.samples.get(("ndjson", "per-record"))
    if per_record:
        [s] = per_record
        print()
        print(f"one workflow per record (per_record.py, Postgres, queue with default 1 s polling): "
              f"{s.records:,} records, {s.rate:,.1f} rec/s ({s.inside_rate:,.1f} rec/s from first "
              f"enqueue to last result), peak RSS {s.rss_mb:.0f} MB")
    rss = bench.samples.get(("ndjson", "rss"))
    if rss:
        [s] = rss
        print()
        print(f"memory: ingest load of {s.records:,} NDJSON records on Postgres: peak RSS "
              f"{s.rss_mb:.0f} MB, {s.rate:,.0f} rec/s")
    print()
    return min(ratios)


def cpu_lines(bench: Bench, formats: list, sqlite: bool) -> str:
    """CPU seconds per 100,000 records (medians): the loader's process and, where the server
    is local, Postgres's, so that a reader can tell which side had work to spare."""
    lines = ["CPU s per 100,000 records (median; loader process / Postgres server):"]
    loaders = ["baseline", "pg-alone", "ingest"] + (["sqlite", "sqlite-alone"] if sqlite else [])
    for fmt in formats:
        parts = []
        for loader in loaders:
            samples = bench.samples.get((fmt, loader), [])
            own = statistics.median(1e5 * s.cpu_s / s.records for s in samples)
            servers = [1e5 * s.server_cpu_s / s.records for s in samples
                       if s.server_cpu_s is not None]
            server = f" / {statistics.median(servers):.2f}" if servers and "sqlite" not in loader \
                else ""
            parts.append(f"{loader} {own:.2f}{server}")
        lines.append(f"  {fmt}: " + ", ".join(parts))
    return "\n".join(lines)


def source_digest() -> str:
    """A hash of the product's Python files, to notice edits made while the benchmark runs."""
    hasher = hashlib.sha256()
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] not in (".venv", "benchmarks", "tests", ".git"):
            hasher.update(str(relative).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:12]


def machine() -> str:
    try:
        from importlib.metadata import version

        dbos = f"dbos {version('dbos')}"
    except Exception:
        dbos = "dbos ?"
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True).stdout.split("\n")
    if any(line.strip() for line in changed):
        commit += " with uncommitted changes"
    return (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {dbos}, "
            f"commit {commit}")


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: Optional[list] = None):
    parser = argparse.ArgumentParser(
        description="Benchmark `ingest load` against a plain COPY loader.",
        epilog="Example: python benchmarks/bench.py --records 100000 --repeats 3 --sqlite")
    parser.add_argument("--records", type=int, help=f"Records per file (default {DEFAULTS['records']}).")
    parser.add_argument("--repeats", type=int, help=f"Runs per loader and format (default {DEFAULTS['repeats']}).")
    parser.add_argument("--formats", help=f"Comma-separated, of {', '.join(FORMATS)} (default: all).")
    parser.add_argument("--sqlite", action="store_true",
                        help="Also load each file with ingest on its SQLite default.")
    parser.add_argument("--per-record", type=int,
                        help=f"Records for the one-workflow-per-record run; 0 skips it "
                             f"(default {DEFAULTS['per_record']}).")
    parser.add_argument("--rss-records", type=int,
                        help="Records of an extra NDJSON load measured for peak RSS; 0 skips it "
                             "(default 0).")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", metavar="URL",
                        help="Postgres server, without a database (default: %(default)s).")
    parser.add_argument("--out", type=Path, default=HERE / "out", metavar="DIR",
                        help="Where data files are generated and kept (default: benchmarks/out).")
    parser.add_argument("--defaults", action="store_true",
                        help="ingest with its default options (no transform), not the "
                             "baseline's uppercasing: the limit's rows are the same size.")
    parser.add_argument("--smoke", action="store_true",
                        help="A tiny run for the test suite: 300 records, one repeat, ndjson only, "
                             "20 per-record workflows.")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        parser.error(f"--formats: unknown {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(FORMATS)}")
    if args.records < 1 or args.repeats < 1 or args.per_record < 0 or args.rss_records < 0:
        parser.error("--records and --repeats must be at least 1; --per-record and "
                     "--rss-records at least 0")
    return args, formats


def run(args, formats: list) -> float:
    pg = Postgres(args.pg)
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:]),
        "machine": f"{machine()}, Postgres {pg.version()}",
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "source": source_digest(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scratch-", dir=args.out) as scratch:
        bench = Bench(pg, args.out, Path(scratch), work=() if args.defaults else SAME_WORK)
        for fmt in formats:
            path = dataset(args.out, args.records, fmt)
            for repeat in range(args.repeats):
                # Alternate, and swap who goes first, so drift in the machine's load hits both.
                trio = [("baseline", lambda: bench.baseline(path, fmt, args.records)),
                        ("pg-alone", lambda: bench.postgres_alone(path, fmt, args.records)),
                        ("ingest", lambda: bench.ingest_postgres(path, args.records))]
                for loader, go in trio if repeat % 2 == 0 else trio[::-1]:
                    bench.add(fmt, loader, go())
            if args.sqlite:
                for repeat in range(args.repeats):
                    pair = [("sqlite", lambda: bench.ingest_sqlite(path, args.records)),
                            ("sqlite-alone", lambda: bench.sqlite_alone(path, fmt, args.records))]
                    for loader, go in pair if repeat % 2 == 0 else pair[::-1]:
                        bench.add(fmt, loader, go())
        if args.per_record:
            path = dataset(args.out, args.per_record, "ndjson")
            bench.add("ndjson", "per-record", bench.per_record(path, args.per_record))
        if args.rss_records:
            path = dataset(args.out, args.rss_records, "ndjson")
            bench.add("ndjson", "rss", bench.ingest_postgres(path, args.rss_records))
    context["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if source_digest() != context["source"]:
        context["warning"] = ("WARNING: the product's source files changed while this ran, "
                              "so its runs measured different code; run it again")
    return report(bench, args, formats, context)


def main(argv: Optional[list] = None) -> int:
    args, formats = parse_args(argv)
    began = time.perf_counter()
    try:
        ratio = run(args, formats)
    except BenchError as exc:
        log(f"bench: {exc}")
        return 1
    log(f"benchmark took {time.perf_counter() - began:.1f} s")
    print(f"RATIO {ratio:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
