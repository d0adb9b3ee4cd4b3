"""Helper processes of one command, so that a load uses every core (``ingest load --workers N``,
``ingest worker --processes N``).

The command starts N-1 ``ingest worker`` processes of the same executable. Each is a DBOS
executor of its own, with an id derived from the command's (``local-helper-1``...), and
takes chunks from the same queues, so the transform, the JSON work and the writes of
different chunks run in parallel, past the GIL. The fleet:

- restarts a helper that dies: launched again under its id, DBOS recovers the chunks it
  had taken;
- stops the helpers when the command ends (SIGTERM: each lets its running chunks finish,
  as ``ingest worker`` does on Ctrl-C), and kills one that outlives the drain;
- takes over, in the command's own process, the unfinished chunks of helper ids it does not
  start this time (an earlier command with more workers that was killed);
- and a helper stops by itself when its parent dies (it checks twice a second), so a kill -9
  of the command leaves no process behind for long; the same command again finishes the run.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

HELPER_INFIX = "-helper-"
CHECK_SEC = 0.5  # how often the fleet looks at its helpers, and a helper at its parent
STOP_GRACE_SEC = 5  # after the drain, how long a helper may take to exit before SIGKILL


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


AUTO = 0  # ``--workers auto``, resolved once the database is known (``processes_for``)
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def worker_count(value: str) -> int:
    """``--workers``: a number of processes, or ``auto`` (``AUTO``)."""
    if value == "auto":
        return AUTO
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 256:
        raise ValueError(f"--workers {value!r}: expected a number from 1 to 256, or auto")
    return count


def processes_for(processes: int, database_url: Optional[str]) -> int:
    """``--workers auto``: one process per usable CPU; half as many when the database is a
    Postgres server on this machine, whose backends need about as much CPU as the processes
    that feed them (measured: 2.35 against 2.18 CPU seconds per 100,000 records), so that
    more processes than that only take cores from the server. Any other count stays."""
    if processes != AUTO:
        return processes
    from ..database import app_database_url, is_postgres

    url = app_database_url(database_url)
    if is_postgres(url) and server_is_here(url):
        return max(1, usable_cpus() // 2)
    return usable_cpus()


def server_is_here(url: str) -> bool:
    """Whether the URL's server is this machine (a loopback name or a Unix socket)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host", "")
    host = host[0] if isinstance(host, tuple) else host  # ?host= given more than once
    return host in LOCAL_HOSTS or host.startswith("/")


def helper_id(parent_id: str, number: int) -> str:
    return f"{parent_id}{HELPER_INFIX}{number}"


class Fleet:
    """N-1 helper processes beside this one, for the duration of a ``with`` block."""

    def __init__(self, parent_id: str, processes: int, concurrency: int,
                 database_url: Optional[str], drain_sec: int, say: Callable[[str], None]):
        self.parent_id, self.concurrency, self.database_url = parent_id, concurrency, database_url
        self.drain_sec, self.say = drain_sec, say
        processes = processes_for(processes, database_url)
        self.ids = [helper_id(parent_id, n) for n in range(1, processes)]
        self.processes: dict = {}
        self._stopping = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        self.fork_entry: Optional[Callable[[list], None]] = None

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *_) -> bool:
        self.stop()
        return False

    def start(self, fork_entry: Optional[Callable[[list], None]] = None) -> None:
        """Start the helpers (once). They may start before this process has launched DBOS,
        in parallel with its scan, where concurrent start-ups are safe (Postgres); then,
        with ``fork_entry`` (what runs ``ingest ARGUMENTS``: the command line's entry), as
        forks of this process (no thread runs yet), which saves each one the half second of
        CPU its imports would cost."""
        if self.processes or not self.ids:
            return
        self.fork_entry = fork_entry
        for executor_id in self.ids:
            self.processes[executor_id] = self._spawn(executor_id)
        self._watcher = threading.Thread(target=self._watch, name="ingest-fleet", daemon=True)
        self._watcher.start()

    @property
    def size(self) -> int:
        """Processes loading chunks: this one and the helpers started (restarts replace)."""
        return len(self.processes) + 1

    def stop(self) -> None:
        """SIGTERM every helper (each drains its running chunks), then wait; SIGKILL what
        is left after the drain and a grace period."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_sec + STOP_GRACE_SEC
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, executor_id: str):
        arguments = ["worker", "--worker-id", executor_id, "--concurrency", str(self.concurrency),
                     "--drain-timeout", str(self.drain_sec), "--parent-pid", str(os.getpid())]
        if self.fork_entry and not self._watcher:  # restarts come from a thread: no fork there
            return Forked(arguments, self.database_url, self.fork_entry)
        env = dict(os.environ)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url  # not on the command line: ps shows it
        return subprocess.Popen([sys.executable, "-m", "durable_ingest.cli", *arguments], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_SEC):
            for executor_id, process in list(self.processes.items()):
                code = process.poll()
                if code is not None and not self._stopping.is_set():
                    self.say(f"helper {executor_id} (pid {process.pid}) exited with {code}; "
                             "restarting it: it recovers the chunks it had taken")
                    self.processes[executor_id] = self._spawn(executor_id)

    def take_over_others(self, databases) -> None:
        """Recover here the unfinished workflows of this command's helper ids that are not
        started this time (a killed earlier command had more workers), once no live process
        has those ids (a helper of a killed command may still be draining)."""
        from dbos import DBOS

        from ..runtime.launch import take_over
        from ..runtime.executor_lock import ExecutorLock
        from ..contract import ACTIVE

        prefix = f"{self.parent_id}{HELPER_INFIX}"
        pending = DBOS.list_workflows(status=list(ACTIVE), load_input=False, load_output=False)
        others = sorted({w.executor_id for w in pending if w.executor_id
                         and w.executor_id.startswith(prefix) and w.executor_id not in self.ids})
        for other in others:
            lock = ExecutorLock(databases, other)
            lock.acquire(on_wait=lambda: None)
            try:
                self.say(f"took over {take_over([other])} unfinished workflow(s) of {other}")
            finally:
                lock.release()


class Forked:
    """A helper forked from this process, running ``ingest ARGUMENTS``; what ``Fleet`` needs
    of ``subprocess.Popen``. Fork only while this process runs no other thread."""

    def __init__(self, arguments: list, database_url: Optional[str],
                 entry: Callable[[list], None]):
        self.returncode: Optional[int] = None
        self.pid = os.fork()
        if self.pid == 0:
            self._run(arguments, database_url, entry)

    @staticmethod
    def _run(arguments: list, database_url: Optional[str], entry: Callable[[list], None]) -> None:
        code = 1
        try:
            quiet = os.open(os.devnull, os.O_RDWR)
            os.dup2(quiet, 0)
            os.dup2(quiet, 1)
            if database_url:
                os.environ["DATABASE_URL"] = database_url
            entry(arguments)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0
        except BaseException as exc:  # noqa: BLE001  a helper must never return into the parent's code
            from ..errors import one_line

            print(f"Error: helper {arguments[2]}: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code)

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"helper {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def exit_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """In a helper: set ``stop`` as soon as the parent process is gone."""

    def watch() -> None:
        while not stop.wait(CHECK_SEC):
            if os.getppid() != parent_pid:
                stop.set()

    threading.Thread(target=watch, name="ingest-parent-watch", daemon=True).start()
