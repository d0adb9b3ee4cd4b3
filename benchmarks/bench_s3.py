"""Benchmark: a bucket of objects against the same files in a local folder.

    python benchmarks/bench_s3.py                          # 1,000 objects x 100 records, 3 repeats
    python benchmarks/bench_s3.py --objects 200 --per-object 500 --repeats 5
    python benchmarks/bench_s3.py --smoke                  # seconds; used by the test suite

The records (``ingest generate``, randomuser-shaped, seed 7) are cut into ``--objects``
envelope files of ``--per-object`` records in a local folder, and the same files are put in
a bucket of a local S3 server (moto in server mode, as the tests use it: tests/s3_server.py).
``ingest load FOLDER``, ``ingest load s3://bucket/landing/`` and the same bucket load with
``INGEST_S3_COPIES_MB=0`` ("far": no copy kept by the scan, every piece a ranged GET, as a
worker on another machine reads) then run in turn, each in
fresh Postgres databases set up by an untimed tiny load (an existing installation) and in a
fresh working directory (an empty spool, so every object is downloaded: no fingerprint
cache). Each run is its own process, timed from start to exit, its peak RSS measured, every
record checked in once.

It prints the median records/s of each, the ratios bucket/folder (target >= 0.5) and
far/folder, the bucket
load's peak RSS (target <= 250 MB), and the S3 server's own CPU seconds per load and per
request (moto is Python, on the same cores as ingest and Postgres: its CPU is time the load
can't use). The last line is ``RATIO <bucket / folder>``.
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench import (BenchError, Postgres, child_env, dataset, ingest_command, log,  # noqa: E402
                   measure, server_and_out_options)
from bench_files import split_into_files  # noqa: E402

ACCESS_KEY, SECRET_KEY = "AKIABENCHMARK", "bench-secret-key"
DEFAULTS = {"objects": 1000, "per_object": 100, "repeats": 3}
SMOKE = {"objects": 20, "per_object": 10, "repeats": 1}
PAGE = 1000  # keys per listing request
SIDES = ["folder", "bucket", "far"]


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fill_bucket(server, folder: Path) -> str:
    """The folder's files as objects under landing/ of a new bucket; its name."""
    from s3_server import TestBucket

    bucket = TestBucket(server.url)
    files = sorted(p for p in folder.rglob("*.json"))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: bucket.put(f"landing/{p.relative_to(folder)}", p.read_bytes()),
                      files))
    return bucket.name


def s3_env(server, work: Path) -> dict:
    """AWS settings for the loads: fixed keys, the local endpoint, nothing of ~/.aws."""
    (work / "aws-config").write_text("")
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.url,
            "AWS_CONFIG_FILE": str(work / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws-config"),
            "AWS_EC2_METADATA_DISABLED": "true"}


def one_load(pg: Postgres, target: str, aws: dict, records: int, rerun=None) -> dict:
    """``ingest load TARGET`` in fresh databases and a fresh working directory; ``rerun``
    (the moto server) also times the same inputs with one new small file: a new run whose
    objects are all known (no GET)."""
    with pg.fresh("app", "sys") as (app, system), tempfile.TemporaryDirectory() as work:
        env = child_env(DATABASE_URL=pg.url(app), DBOS_SYSTEM_DATABASE_URL=pg.url(system), **aws)
        tiny = Path(work) / "tiny.ndjson"
        tiny.write_text("".join(f'{{"id": {i}}}\n' for i in range(20)))
        measure([*ingest_command(), "load", str(tiny), "--json"], env=env, cwd=Path(work))
        cpu = children_cpu()
        run = measure([*ingest_command(), "load", target, "--json", "--no-progress"], env=env,
                      cwd=Path(work))
        cpu = children_cpu() - cpu
        again = rerun_known(target, env, Path(work), rerun) if rerun else {}
    summary = run.result()
    if (summary["tasks"], summary["errors"], summary["records"]) != (records, 0, records):
        raise BenchError(f"{target}: did not load every record once: {summary}")
    return {"rps": records / run.seconds, "seconds": run.seconds, "rss_mb": run.rss_mb,
            "cpu_s": cpu, **again}


def rerun_known(target: str, env: dict, work: Path, server) -> dict:
    """The bucket again with one new file: its wall time and moto's CPU (the listing only)."""
    extra = work / "extra.ndjson"
    extra.write_text("".join(f'{{"extra": {i}}}\n' for i in range(5)))
    before = cpu_of(server.process.pid)
    run = measure([*ingest_command(), "load", target, str(extra), "--json", "--no-progress"],
                  env=env, cwd=work)
    summary = run.result()
    if (summary["tasks"], summary["files_loaded"]) != (5, 1):
        raise BenchError(f"{target} again: expected only the new file to load: {summary}")
    return {"rerun_s": run.seconds, "rerun_moto_s": cpu_of(server.process.pid) - before,
            "rerun_known": summary["files_already_loaded"]}


def run(args, server, pg: Postgres, folder: Path, bucket: str, aws: dict) -> dict:
    """Alternate the two loads (who goes first swaps each repeat); the samples of each."""
    records = args.objects * args.per_object
    samples: dict = {side: [] for side in SIDES} | {"moto_cpu_s": [], "far_moto_cpu_s": []}
    for repeat in range(args.repeats):
        for side in SIDES[repeat % 3:] + SIDES[:repeat % 3]:  # who goes first turns
            before = cpu_of(server.process.pid)
            target = str(folder) if side == "folder" else f"s3://{bucket}/landing/"
            env = {} if side == "folder" else \
                aws | ({"INGEST_S3_COPIES_MB": "0"} if side == "far" else {})
            sample = one_load(pg, target, env, records,
                              rerun=server if side == "bucket" and repeat == 0 else None)
            samples[side].append(sample)
            if side != "folder":
                samples[f"{'far_' if side == 'far' else ''}moto_cpu_s"].append(
                    cpu_of(server.process.pid) - before - sample.get("rerun_moto_s", 0.0))
            log(f"  {side:<6} {sample['rps']:>9,.0f} rec/s  {sample['seconds']:6.2f} s  "
                f"CPU {sample['cpu_s']:5.2f} s  RSS {sample['rss_mb']:4.0f} MB")
    return samples


def report(args, samples: dict) -> float:
    records = args.objects * args.per_object
    listings = -(-args.objects // PAGE)
    median = {side: {key: statistics.median(s[key] for s in samples[side])
                     for key in ("rps", "seconds", "rss_mb", "cpu_s")}
              for side in SIDES}
    ratio = median["bucket"]["rps"] / median["folder"]["rps"]
    far = median["far"]["rps"] / median["folder"]["rps"]
    print(f"{args.objects:,} objects x {args.per_object} records ({records:,} records), "
          f"{args.repeats} repeats, medians; Postgres, local moto S3 server")
    print(f"{'load':<8} {'rec/s':>9} {'wall s':>7} {'ingest CPU s':>13} {'peak RSS MB':>12}")
    for side in SIDES:
        m = median[side]
        print(f"{side:<8} {m['rps']:>9,.0f} {m['seconds']:>7.2f} {m['cpu_s']:>13.2f} "
              f"{m['rss_mb']:>12.0f}")
    print(f"ratio bucket/folder: {ratio:.2f} (target >= 0.5: {'ok' if ratio >= 0.5 else 'missed'})")
    print(f"ratio far/folder: {far:.2f} (every piece a ranged GET, as on a machine that did not "
          "scan)")
    print(f"bucket peak RSS: {median['bucket']['rss_mb']:.0f} MB (target <= 250 MB: "
          f"{'ok' if median['bucket']['rss_mb'] <= 250 else 'missed'})")
    for side, requests in (("bucket", args.objects + listings),
                           ("far", 2 * args.objects + listings)):
        moto = statistics.median(samples[f"{'far_' if side == 'far' else ''}moto_cpu_s"])
        print(f"moto CPU per {side} load: {moto:.2f} s for ~{requests:,} requests "
              f"({1000 * moto / requests:.1f} ms each); the load took "
              f"{median[side]['seconds']:.2f} s on {os.cpu_count()} cores shared by ingest, "
              "Postgres and moto")
    first = samples["bucket"][0]
    print(f"again with one new file: {first['rerun_s']:.2f} s, {first['rerun_known']:,} objects "
          f"known without a GET (moto CPU {first['rerun_moto_s']:.2f} s: the listing)")
    print(f"RATIO {ratio:.2f}")
    return ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=DEFAULTS["objects"])
    parser.add_argument("--per-object", type=int, default=DEFAULTS["per_object"])
    parser.add_argument("--repeats", type=int, default=DEFAULTS["repeats"])
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="20 objects x 10 records, once")
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    args.out.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.pg)
    from s3_server import MotoServer

    try:
        pg.version()
        single = dataset(args.out, args.objects * args.per_object, "ndjson")
        folder = split_into_files(single, args.out / f"landing-{args.objects}x{args.per_object}",
                                  args.objects, args.per_object)
        with MotoServer() as server, tempfile.TemporaryDirectory() as work:
            bucket = fill_bucket(server, folder)
            log(f"  {args.objects:,} objects in s3://{bucket}/landing/ at {server.url}")
            samples = run(args, server, pg, folder, bucket, s3_env(server, Path(work)))
    except BenchError as exc:
        log(f"bench_s3: {exc}")
        return 1
    report(args, samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
