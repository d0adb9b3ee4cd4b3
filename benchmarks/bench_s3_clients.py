"""Which S3 client for s3:// inputs: boto3, obstore or s3fs, measured against a local moto
server (tests/s3_server.py), each client in a fresh process of its own interpreter.

    .venv/bin/python benchmarks/bench_s3_clients.py \\
        --python boto3=.venv/bin/python --python obstore=/tmp/obs/bin/python \\
        --python s3fs=/tmp/s3fs/bin/python

(s3fs pins an older botocore than boto3's, hence one interpreter per client.) The driver's
interpreter needs moto[server] and boto3. Per client it prints: the import time (median of
``--repeats`` runs of ``python -c 'import X'``, less an empty ``python -c pass``), the time
to import it and make a client in the worker, listing ``--list-objects`` keys (1,000 a page),
ranged GETs of ``--get-objects`` objects of ``--size`` bytes one after the other (If-Match
on the ETag where the client can send it), the worker's CPU seconds for both, its RSS after
making the client and at its peak, and whether it found credentials in a profile named by
AWS_PROFILE (~/.aws/config) with moto's IAM checks on.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench"
MODULES = {"boto3": "boto3", "obstore": "obstore", "s3fs": "s3fs",
           "s3store": "durable_ingest.sources.s3"}
KEY, SECRET = "AKIABENCHMARKKEY0001", "bench/secret/key/0123456789abcdefghijkl"


# -- in the worker: one client ---------------------------------------------------------------------
def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM); not ru_maxrss,
    which Linux carries over from the parent that forked it."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def boto3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))

    def listing(prefix):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=prefix, PaginationConfig={"PageSize": 1000})
        for page in pages:
            for item in page.get("Contents", ()):
                yield item["Key"], item["Size"], item["ETag"]

    def ranged(key, size, etag):
        answer = client.get_object(Bucket=BUCKET, Key=key, Range=f"bytes=0-{size - 1}",
                                   IfMatch=etag)
        return answer["Body"].read()

    return listing, ranged


def obstore_client(endpoint: str):
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, endpoint=endpoint, client_options={"allow_http": True})

    def listing(prefix):
        for batch in obstore.list(store, prefix=prefix, chunk_size=1000):
            for meta in batch:
                yield meta["path"], meta["size"], meta["e_tag"]

    def ranged(key, size, etag):
        return obstore.get(store, key, options={"range": (0, size), "if_match": etag}).bytes()

    return listing, ranged


def s3fs_client(endpoint: str):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)

    def listing(prefix):
        # find() is s3fs's public listing: it gathers every page into one list first
        for info in fs.find(f"{BUCKET}/{prefix}", detail=True).values():
            yield info["Key"].split("/", 1)[1], info["size"], info["ETag"]

    def ranged(key, size, etag):
        return fs.cat_file(f"{BUCKET}/{key}", start=0, end=size)  # no If-Match in cat_file

    return listing, ranged


def s3store_client(endpoint: str):
    """This project's layer over boto3 (sources/s3.py), for its overhead over plain boto3."""
    from durable_ingest.sources.s3 import S3Object, S3Store

    store = S3Store(endpoint)

    class Skipped:
        hidden = other = 0

    def listing(prefix):
        for obj in store.objects(f"s3://{BUCKET}/{prefix}", Skipped()):
            yield obj.key, obj.size, obj.etag

    def ranged(key, size, etag):
        obj = S3Object(f"s3://{BUCKET}/{key}", BUCKET, key, size, etag)
        return store.read_range(obj, 0, size)

    return listing, ranged


def worker(name: str, endpoint: str, list_objects: int, get_objects: int) -> dict:
    started = time.perf_counter()
    listing, ranged = CLIENTS[name](endpoint)
    result = {"setup_s": time.perf_counter() - started, "rss_after_setup_mb": rss_mb()}
    started, cpu_before = time.perf_counter(), cpu()
    listed = sum(1 for _ in listing("list/"))
    result.update(list_s=time.perf_counter() - started, list_cpu_s=cpu() - cpu_before)
    assert listed == list_objects, (listed, list_objects)
    objects = list(listing("get/"))
    assert len(objects) == get_objects, len(objects)
    started, cpu_before = time.perf_counter(), cpu()
    got = sum(len(ranged(*item)) for item in objects)
    result.update(get_s=time.perf_counter() - started, get_cpu_s=cpu() - cpu_before,
                  get_mb=got / 1e6, rss_peak_mb=rss_mb("VmHWM"))
    return result


CLIENTS = {"boto3": boto3_client, "obstore": obstore_client, "s3fs": s3fs_client,
           "s3store": s3store_client}


def profile_worker(name: str, endpoint: str) -> dict:
    """Whether the client signs with the keys of the AWS_PROFILE profile (moto checks them)."""
    try:
        listing, _ = CLIENTS[name](endpoint)
        next(iter(listing("list/")))
        return {"profile": "yes"}
    except Exception as exc:  # any failure means: not with these credentials
        return {"profile": f"no: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}


# -- in the driver ---------------------------------------------------------------------------------
def seed(endpoint: str, list_objects: int, get_objects: int, size: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from s3_server import admin_client

    client = admin_client(endpoint, KEY, SECRET)
    client.create_bucket(Bucket=BUCKET)
    body = (b'{"n": 1, "name": "x"}\n' * (size // 22 + 1))[:size]
    jobs = [(f"list/{n // 1000:03d}/k{n:06d}.json", b"{}\n") for n in range(list_objects)]
    jobs += [(f"get/g{n:05d}.ndjson", body) for n in range(get_objects)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: client.put_object(Bucket=BUCKET, Key=job[0], Body=job[1]),
                      jobs))


def import_time(python: str, module: str, repeats: int) -> dict:
    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, env=clean_env())
        return time.perf_counter() - started

    empty = statistics.median(wall("pass") for _ in range(repeats))
    full = statistics.median(wall(f"import {module}") for _ in range(repeats))
    trace = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"],
                           capture_output=True, text=True, env=clean_env()).stderr
    cumulative = [int(line.split("|")[1]) for line in trace.splitlines()
                  if line.rstrip().endswith(f"| {module}")]
    return {"import_s": full - empty, "importtime_cumulative_s": cumulative[-1] / 1e6,
            "modules_imported": trace.count("\n") - 1}


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # no request may leave this machine: no EC2 metadata service, ever
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_METADATA_ENDPOINT="http://127.0.0.1:9",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.update(extra)
    return env


def run_worker(python: str, name: str, args, env: dict, mode: str = "--worker") -> dict:
    command = [python, __file__, mode, name, "--endpoint", args.endpoint,
               "--list-objects", str(args.list_objects), "--get-objects", str(args.get_objects)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, python: str, args) -> dict:
    row = {"client": name, "version": version_of(python, name)}
    row.update(import_time(python, MODULES[name], args.repeats))
    runs = [run_worker(python, name, args, clean_env(AWS_ACCESS_KEY_ID=KEY,
                                                      AWS_SECRET_ACCESS_KEY=SECRET,
                                                      AWS_REGION="us-east-1"))
            for _ in range(args.worker_repeats)]
    if any("error" in run for run in runs):
        return {**row, **next(run for run in runs if "error" in run)}
    for field in runs[0]:
        row[field] = statistics.median(run[field] for run in runs)
    return row


def version_of(python: str, name: str) -> str:
    package = "durable-ingest" if name == "s3store" else name
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def check_profiles(clients: dict, args, server) -> None:
    """With moto's IAM checks on, only the keys of a real IAM user sign valid requests."""
    sys.path.insert(0, str(ROOT / "tests"))
    from s3_server import admin_client

    iam = admin_client(args.endpoint, KEY, SECRET, service="iam")
    iam.create_user(UserName="bench")
    iam.put_user_policy(UserName="bench", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                  "Resource": "*"}]}))
    key = iam.create_access_key(UserName="bench")["AccessKey"]
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as config:
        config.write(f"[profile bench]\naws_access_key_id = {key['AccessKeyId']}\n"
                     f"aws_secret_access_key = {key['SecretAccessKey']}\nregion = us-east-1\n")
    server.require_auth(True)
    try:
        for row in clients.values():
            env = clean_env(AWS_PROFILE="bench", AWS_CONFIG_FILE=config.name)
            row.update(run_worker(args.pythons[row["client"]], row["client"], args, env,
                                  mode="--profile-worker"))
    finally:
        server.require_auth(False)
        os.unlink(config.name)


def print_table(rows: list) -> None:
    columns = ["client", "version", "import_s", "importtime_cumulative_s", "modules_imported",
               "setup_s", "rss_after_setup_mb", "list_s", "list_cpu_s", "get_s", "get_cpu_s",
               "get_mb", "rss_peak_mb", "profile"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, row.get(
            "error", ""))) for c in columns]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", default=[], metavar="CLIENT=PATH")
    parser.add_argument("--list-objects", type=int, default=10_000)
    parser.add_argument("--get-objects", type=int, default=1_000)
    parser.add_argument("--size", type=int, default=60 * 1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker-repeats", type=int, default=3)
    parser.add_argument("--worker", choices=sorted(MODULES))
    parser.add_argument("--profile-worker", choices=sorted(MODULES))
    parser.add_argument("--endpoint")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.worker or args.profile_worker:
        result = worker(args.worker, args.endpoint, args.list_objects, args.get_objects) \
            if args.worker else profile_worker(args.profile_worker, args.endpoint)
        print(json.dumps(result))
        return
    drive(args)


def drive(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from s3_server import MotoServer

    args.pythons = dict(spec.split("=", 1) for spec in args.python) or {"boto3": sys.executable}
    with MotoServer() as server:
        args.endpoint = server.url
        started = time.perf_counter()
        seed(args.endpoint, args.list_objects, args.get_objects, args.size)
        print(f"seeded {args.list_objects + args.get_objects:,} objects in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows = {name: measure(name, python, args) for name, python in args.pythons.items()}
        check_profiles(rows, args, server)
    print_table(list(rows.values()))
    if args.json:
        Path(args.json).write_text(json.dumps(list(rows.values()), indent=2))


if __name__ == "__main__":
    main()
