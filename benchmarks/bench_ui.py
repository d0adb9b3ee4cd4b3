"""Benchmark: how fast ``ingest ui`` renders a long run list and a run of many chunks, and
what its polling costs a load.

    python benchmarks/bench_ui.py                      # 1,000 runs, a 2,000-chunk run, 100,000 records
    python benchmarks/bench_ui.py --smoke              # seconds; used by the test suite

On Postgres, in fresh databases: ``--runs`` one-record runs (queued with ``load --detach``
and worked by an ``ingest worker``), one run of ``--chunks`` one-record chunks, then
``ingest ui``. Each page is fetched ``--repeats`` times; the server's own time (its
``Server-Timing`` header) and the time to the last byte are reported, median. Then the same
``--records``-record load runs ``--load-repeats`` times with a poller doing what an open tab
does (the runs page's live part once a second until the new run shows, then that run's) and
as often without, alternating.
Screenshots of both pages go to ``--out`` (with Chromium and selenium installed).
The last line is ``RATIO <slowest page's server time / 300 ms>`` (1.00 or less: on target).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, dataset, ingest_command, log,  # noqa: E402
                   server_and_out_options)
from bench_files import postgres_env, prepare  # noqa: E402

TARGET_MS = 300


def ingest(*args, env: dict, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*ingest_command(), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise BenchError(f"ingest {' '.join(map(str, args))}: {proc.stderr.strip()[-500:]}")
    return proc


def many_runs(count: int, env: dict, work: Path) -> None:
    """``count`` one-record runs: queued from this process (as ``load --detach`` does, without
    a process start each), then worked by one worker until all are done."""
    folder = work / "tiny"
    folder.mkdir()
    paths = []
    for number in range(count):
        paths.append(folder / f"r{number:05d}.ndjson")
        paths[-1].write_text(json.dumps({"id": number}) + "\n")
    script = ("import sys\nfrom durable_ingest.commands import load as runs\n"
              "from durable_ingest.steps.inputs import identify_inputs\n"
              "from durable_ingest.runtime.launch import App\n"
              "from durable_ingest.steps.load_options import LoadOptions\n"
              "with App(None, 1, role='client') as app:\n"
              "    for path in sys.argv[1:]:\n"
              "        options = LoadOptions()\n"
              "        manifest, skipped, scanned = identify_inputs([path], options)\n"
              "        runs.load(app, [path], options, manifest, skipped, scanned, detach=True)\n")
    subprocess.run([sys.executable, "-c", script, *map(str, paths)], env=env, cwd=work, check=True)
    worker = subprocess.Popen([*ingest_command(), "worker", "--worker-id", "bench", "--concurrency", "16"],
                              env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            runs = json.loads(ingest("status", "--json", "--limit", count + 10, env=env, cwd=work).stdout)
            if sum(r["state"] == "done" for r in runs) >= count:
                return
            time.sleep(2)
        raise BenchError(f"{count} queued runs did not finish within 10 minutes")
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def start_ui(env: dict, work: Path):
    process = subprocess.Popen([*ingest_command(), "ui", "--port", "0"], env=env, cwd=work,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    match = re.search(r"http://\S+/", process.stderr.readline())
    if not match:
        process.kill()
        raise BenchError("ingest ui did not say where it listens")
    return process, match.group(0)


def timed_get(url: str) -> tuple:
    """(server ms, client ms) of one GET."""
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
        server = float(re.search(r"dur=([\d.]+)", response.headers["Server-Timing"]).group(1))
    return server, (time.perf_counter() - began) * 1000


def page_times(url: str, repeats: int) -> dict:
    timed_get(url)  # the first request opens the server's client and engines
    samples = [timed_get(url) for _ in range(repeats)]
    return {"server_ms": statistics.median(s[0] for s in samples),
            "client_ms": statistics.median(s[1] for s in samples)}


def screenshots(pages: dict, out: Path) -> list:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return []
    if not (os.path.exists("/usr/bin/chromium") and os.path.exists("/usr/bin/chromedriver")):
        return []
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    saved = []
    try:
        for name, url in pages.items():
            driver.get(url)
            path = out / f"ui-{name}.png"
            driver.save_screenshot(str(path))
            saved.append(path)
    finally:
        driver.quit()
    return saved


def polled_load(data: Path, env: dict, work: Path, url: str, poll: bool) -> float:
    """Seconds of one ``ingest load`` while (or while not) a tab polls the pages."""
    stop = threading.Event()

    def poller() -> None:  # what an open tab does: the list until the run shows, then its page
        page = url + "fragment/"
        while not stop.wait(1.0):
            try:
                text = urllib.request.urlopen(page, timeout=30).read().decode()
                newest = re.search(r"data-run='([^']+)'", text)
                if page.endswith("fragment/") and newest and newest.group(1) not in before:
                    page = f"{url}fragment/runs/{newest.group(1)}"
            except OSError:
                pass

    before = urllib.request.urlopen(url + "fragment/", timeout=30).read().decode()

    thread = threading.Thread(target=poller, daemon=True)
    if poll:
        thread.start()
    began = time.perf_counter()
    ingest("load", data, "--json", "--no-progress", "--label", f"poll-{poll}-{time.time()}", env=env, cwd=work)
    seconds = time.perf_counter() - began
    stop.set()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load-repeats", type=int, default=3, help="loads with and without polling")
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="5 runs, 20 chunks, 300 records")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.chunks, args.records, args.repeats, args.load_repeats = 5, 20, 300, 2, 1
    args.out.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.pg)
    try:
        pg.version()
        data = dataset(args.out, args.records, "ndjson")
        with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
            work, env = Path(work), postgres_env(pg, names)
            prepare(env, work)
            began = time.time()
            many_runs(args.runs, env, work)
            big = work / "big.ndjson"
            big.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(args.chunks)))
            big_run = json.loads(ingest("load", big, "--chunk-size", 1, "--concurrency", 16, "--json",
                                        env=env, cwd=work).stdout)["run_id"]
            log(f"  set up {args.runs + 2} runs in {time.time() - began:.0f} s")
            ui, url = start_ui(env, work)
            try:
                pages = {"runs": url, "run": f"{url}runs/{big_run}"}
                times = {name: page_times(page, args.repeats) for name, page in pages.items()}
                shots = screenshots(pages, args.out)
                loads = {True: [], False: []}
                for repeat in range(args.load_repeats):
                    for poll in ((True, False) if repeat % 2 == 0 else (False, True)):
                        loads[poll].append(polled_load(data, env, work, url, poll))
            finally:
                ui.terminate()
                ui.wait(timeout=30)
    except BenchError as exc:
        log(f"bench_ui: {exc}")
        return 1
    print(f"ingest ui, Postgres: {args.runs + 2} runs listed; a run of {args.chunks} chunks")
    print(f"{'page':<6} {'server ms':>10} {'to last byte ms':>16} {'target ms':>10}")
    for name, t in times.items():
        print(f"{name:<6} {t['server_ms']:>10.1f} {t['client_ms']:>16.1f} {TARGET_MS:>10}")
    quiet, polled = statistics.median(loads[False]), statistics.median(loads[True])
    print(f"{args.records:,}-record load: {quiet:.2f} s without the page, {polled:.2f} s with it "
          f"polling ({(polled / quiet - 1) * 100:+.1f} %, target under +2 %)")
    for path in shots:
        print(f"screenshot: {path}")
    print(f"RATIO {max(t['server_ms'] for t in times.values()) / TARGET_MS:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
