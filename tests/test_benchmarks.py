"""The benchmark and the kill stress script keep working (tiny runs, no timing asserts)."""

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # real benchmark and kill-stress runs


def test_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench.py"), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0


def test_kill_stress_script_smoke_run(postgres_backend):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stress_kill.py"),
                             "--rounds", "2", "--records", "300"],
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "STRESS ok 2/2"


def test_folder_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_files.py"), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "50 files x 4 records" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0


def test_shaping_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_shaping.py"), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:6]] == [
        "uppercase", "identity", "key", "update"]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0


def test_workers_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_workers.py"), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[2:5]] == ["baseline", "workers", "workers"]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0


def test_ui_benchmark_smoke_run_prints_a_ratio(postgres_backend, tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ui.py"), "--smoke",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "record load:" in result.stdout and "target under +2 %" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("RATIO ") and float(last.split()[1]) > 0


def test_kill_stress_script_on_a_folder(postgres_backend):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stress_kill.py"),
                             "--rounds", "2", "--records", "200", "--files", "40"],
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "STRESS ok 2/2"
