"""Torch threads: one per process by default (what degrades least on a busy machine);
``--threads N`` on the computing commands, ``ZOO_THREADS``, or the user's own
``OMP_NUM_THREADS`` choose otherwise. The busy/quiet wall-time ratio is a benchmark
(``benchmarks/bench_threads.py``), not a test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from zoo import api
from zoo.cli.commands import DEFAULT_THREADS, cli


@pytest.fixture
def seen(monkeypatch):
    """Run ``zoo eval`` in this process; returns the torch threads its work saw."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ZOO_THREADS"):
        monkeypatch.delenv(var, raising=False)
    found = []

    def evaluate(*args, **kwargs):
        found.append(torch.get_num_threads())
        raise api.ZooError("stop here")

    monkeypatch.setattr(api, "evaluate", evaluate)

    def run(*args: str, **env: str) -> int:
        from click.testing import CliRunner

        before = torch.get_num_threads()
        result = CliRunner().invoke(cli, [*args], env=env)
        assert "stop here" in result.output, result.output
        assert torch.get_num_threads() == before  # put back after the command
        return found.pop()

    return run


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_the_thread_count_and_its_overrides(seen):
    torch.set_num_threads(2)
    assert DEFAULT_THREADS == 1
    assert seen("eval", "x") == 1
    assert seen("eval", "x", "--threads", "2") == 2
    assert seen("eval", "x", ZOO_THREADS="2") == 2
    assert seen("eval", "x", "--threads", "1", ZOO_THREADS="2") == 1  # the option wins
    assert seen("eval", "x", OMP_NUM_THREADS="2") == 2  # the user's own setting stands
    assert seen("eval", "x", "--threads", "0") == cores()


@pytest.mark.parametrize("command", ["pull", "train", "sample", "eval"])
def test_every_computing_command_takes_threads(cli_runner, command):
    assert "--threads N" in cli_runner.invoke(cli, [command, "--help"]).output


def test_bad_thread_counts_are_usage_errors(cli_runner):
    for args, env in ((["--threads", "-1"], {}), ([], {"ZOO_THREADS": "many"})):
        result = cli_runner.invoke(cli, ["eval", "x", *args], env=env)
        assert result.exit_code == 2 and "--threads" in result.output


DRIVER = """
import sys
from zoo.cli.commands import cli
try:
    cli(args=sys.argv[1:], prog_name="zoo")
except SystemExit:
    pass
import torch
print("threads", torch.get_num_threads())
"""


def test_a_fresh_process_gets_one_thread_before_torch_starts(tmp_path):
    """In a real process torch is imported after the option is read: OpenMP takes the count
    from the environment zoo set."""
    if cores() < 2:
        pytest.skip("one core: one thread is torch's own default")
    import zoo

    torch.manual_seed(0)
    path = zoo.save(zoo.get_family("realnvp").build({"shape": [2]}), tmp_path / "m")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ZOO_THREADS")}
    for extra, want in (([], 1), (["--threads", "2"], 2)):
        done = subprocess.run([sys.executable, "-c", DRIVER, "sample", str(path), "-n", "2",
                               "-o", str(tmp_path / "s.csv"), *extra], env=env,
                              capture_output=True, text=True, timeout=120)
        assert f"threads {want}" in done.stdout, done.stdout + done.stderr
