"""The benchmark and the kill stress script keep working (tiny runs, no timing asserts)."""

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # real benchmark and kill-stress runs


def smoke_run(script: str, tmp_path) -> str:
    """Run ``benchmarks/SCRIPT --smoke``; its stdout, once it exited 0 with a RATIO line last."""
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0
    return result.stdout


def test_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    smoke_run("bench.py", tmp_path)


def test_kill_stress_script_smoke_run(postgres_backend):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stress_kill.py"),
                             "--rounds", "2", "--records", "300"],
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "STRESS ok 2/2"


def test_folder_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    assert "50 files x 4 records" in smoke_run("bench_files.py", tmp_path)


def test_shaping_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    lines = smoke_run("bench_shaping.py", tmp_path).splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["uppercase", "identity", "key", "update"]


def test_workers_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    lines = smoke_run("bench_workers.py", tmp_path).splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["baseline", "workers", "workers"]


def test_http_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    out = smoke_run("bench_http.py", tmp_path)
    assert "5 pages x 40 records" in out and "200 rows, each once" in out
    assert "(limit 250: ok)" in out


def test_ui_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    out = smoke_run("bench_ui.py", tmp_path)
    assert "record load:" in out and "target under +2 %" in out


def test_kill_stress_script_on_a_folder(postgres_backend):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stress_kill.py"),
                             "--rounds", "2", "--records", "200", "--files", "40"],
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "STRESS ok 2/2"


def test_schedules_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    assert "runs per tick: [1]" in smoke_run("bench_schedules.py", tmp_path)


def test_side_by_side_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    out = smoke_run("bench_ab.py", tmp_path)
    cases = {line.split()[0] for line in out.splitlines()[3:-1]}
    assert cases == {"file", "folder", "help"}


def test_bucket_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install -e '.[dev]'")
    out = smoke_run("bench_s3.py", tmp_path)
    assert "20 objects x 10 records" in out and "moto CPU per bucket load" in out
    assert "ratio far/folder" in out
    assert "target <= 250 MB" in out


def test_landing_benchmark_smoke_run_prints_a_ratio(tmp_path):
    out = smoke_run("bench_landing.py", tmp_path)
    assert "each once" in out and "(0 decompressed)" in out


def test_failures_benchmark_smoke_run_prints_the_targets(tmp_path):
    out = smoke_run("bench_failures.py", tmp_path)
    assert "records 300 | tasks 0 | errors 300 | retries 600" in out
    assert "targets: peak RSS" in out


def test_retention_benchmark_smoke_run_prints_a_ratio(tmp_path):
    out = smoke_run("bench_retention.py", tmp_path)
    assert "with ingest gc --older-than 0s every 5 runs:" in out
