"""Helpers for the fault, concurrency and hostile-input tests: real ``zoo`` subprocesses,
tiny catalogs, and snapshots of what a store holds.

The subprocesses run ``python -m zoo`` with their own ``ZOO_HOME`` and ``ZOO_REGISTRY``, one
thread each (the test machines have two cores shared by several runs). ``ZOO_FAULT_PAUSE``
(see ``zoo/faults.py``) stops one at a named point so that a test can SIGKILL it there.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalogs import catalog, tiny_entry

from zoo.faults import ENV_POINT, ENV_RELEASE, ENV_SECONDS


def tiny_registry(path: Path, names: tuple[str, ...] = ("tiny",), *, steps: int = 300,
                  extra: str = "") -> Path:
    """Write a catalog of tiny entries at ``path`` and return it."""
    entries = [tiny_entry(n, steps=steps, eval_every=max(1, steps // 2),
                          description="a tiny flow for the fault tests",
                          recipe="val_fraction: 0.05, eval_batch_size: 20000") for n in names]
    path.write_text(catalog(*entries) + extra)
    return path


def zoo_env(home: Path, registry: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``zoo`` subprocess: its own store and catalog, one thread."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ZOO_", "HF_")) and k != "PYTEST_CURRENT_TEST"}
    env.update(ZOO_HOME=str(home), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", HF_HUB_DISABLE_TELEMETRY="1")
    if registry is not None:
        env["ZOO_REGISTRY"] = str(registry)
    env.update(extra)
    return env


def run_zoo(args: list[str], env: dict[str, str], *, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``zoo ARGS`` to the end; stdout and stderr are captured as text."""
    return subprocess.run([sys.executable, "-m", "zoo", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Proc:
    """A running ``zoo`` subprocess whose stderr is collected line by line."""

    popen: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    stdout: str = ""

    def __post_init__(self) -> None:
        self._out: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._out_reader.start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            self.lines.append(line)

    def _read_stdout(self) -> None:
        self._out.append(self.popen.stdout.read())

    def wait_for(self, text: str, timeout: float = 120, count: int = 1) -> None:
        """Block until ``count`` lines of stderr contain ``text`` (or fail, saying what it
        printed); ``count``: one line per worker of a multi-process run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in self.lines) >= count:
                return
            if self.popen.poll() is not None:
                self._reader.join(timeout=5)
                if sum(text in line for line in self.lines) >= count:
                    return
                raise AssertionError(f"process exited ({self.popen.returncode}) before "
                                     f"{text!r}: {''.join(self.lines)[-3000:]}")
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"no {text!r} within {timeout} s: {''.join(self.lines)[-3000:]}")

    def kill(self) -> int:
        """SIGKILL it (no cleanup runs) and reap it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.popen.returncode

    def finish(self, timeout: float = 180) -> int:
        """Wait for a normal exit (SIGKILL after ``timeout``); returns the exit status."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(timeout=5)
        self._out_reader.join(timeout=5)
        self.stdout = "".join(self._out)
        return self.popen.returncode

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def start_zoo(args: list[str], env: dict[str, str], *, pause: str | None = None,
              seconds: float = 120, release: Path | None = None,
              argv: list[str] | None = None) -> Proc:
    """Start ``zoo ARGS`` (or ``python ARGV``); with ``pause`` it stops at that fault point
    for ``seconds``, or until the file ``release`` exists."""
    env = dict(env)
    if pause is not None:
        env[ENV_POINT] = pause
        env[ENV_SECONDS] = str(seconds)
    if release is not None:
        env[ENV_RELEASE] = str(release)
    cmd = [sys.executable, *(argv if argv is not None else ["-m", "zoo", *args])]
    popen = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    return Proc(popen)


def fault_line(point: str) -> str:
    """What a process prints when it reaches fault point ``point``."""
    return f"zoo-fault-point {point} "


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256, or "dir" for empty folders)."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and not any(path.iterdir()):
            out[rel] = "dir"
    return out


def store_artifacts(home: Path) -> list[str]:
    """The folders under ``$ZOO_HOME/models`` that carry a final (not hidden) name."""
    models = home / "models"
    if not models.is_dir():
        return []
    return sorted(p.name for p in models.iterdir() if not p.name.startswith("."))


def written_artifacts(home: Path) -> list[str]:
    """Artifacts in the store, staging and trash folders included: what a refused input
    must not leave behind (locks and the data folder are not artifacts)."""
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.is_dir() else []


def one_thread():
    """A pytest fixture body: torch on one thread for a module, restored afterwards. Two
    threads on a loaded two-core machine make tiny trainings ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


REPORT_ENV = "ZOO_GUARANTEES_REPORT"


def record(guarantee: str, case: str, tries: int, program: str, store_after: str) -> None:
    """Add a row to the guarantees table (docs/guarantees.md) when ``ZOO_GUARANTEES_REPORT``
    names a file: what was injected or fed (``tries`` times), what the program did, and what
    the store held afterwards. Called by the tests only after their assertions passed."""
    import json

    target = os.environ.get(REPORT_ENV)
    if not target:
        return
    row = {"guarantee": guarantee, "case": case, "tries": tries, "program": program,
           "store_after": store_after}
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


# Run a zoo command in a process whose huggingface_hub download of the weights stops half
# way: the first half of the bytes is on disk (in huggingface_hub's temporary file), then the
# process announces the point and sleeps until it is killed. Test-only: zoo has no hook here.
HALF_DOWNLOAD_DRIVER = r"""
import os, sys, threading, time
import huggingface_hub.file_download as fd

real_move, real_http_get = fd._download_to_tmp_and_move, fd.http_get
current = threading.local()

def move(*args, filename=None, **kwargs):
    current.filename = filename
    return real_move(*args, filename=filename, **kwargs)

def half_then_pause(url, temp_file, *args, **kwargs):
    start = temp_file.tell()
    real_http_get(url, temp_file, *args, **kwargs)
    if getattr(current, "filename", None) == "model.safetensors":
        size = temp_file.tell() - start
        temp_file.seek(start + size // 2)
        temp_file.truncate()
        temp_file.flush()
        os.fsync(temp_file.fileno())
        sys.stderr.write("zoo-fault-point hub-download pid=%d\n" % os.getpid())
        sys.stderr.flush()
        time.sleep(120)

fd._download_to_tmp_and_move, fd.http_get = move, half_then_pause
from zoo.cli.commands import cli
cli(args=sys.argv[1:], prog_name="zoo")
"""


def tiny_flow(path: Path, **meta: object) -> Path:
    """A RealNVP of [2] (one coupling, width 4) saved as an artifact at ``path``: the
    smallest model a hostile-input test can score, load or push."""
    import torch

    import zoo

    torch.manual_seed(0)
    model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    return zoo.save(model, path, **meta)


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` grey pixels and holds none: Pillow reads the
    size from the header alone, so a decompression bomb costs 57 bytes and no memory (a real
    30000x30000 picture would take 0.9 GB to make)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def refused_line(result, *words: str) -> str:
    """The one line a refused CLI command (a click ``Result``) printed, besides zoo's
    ``zoo: `` notes on stderr: exit status non-zero, no traceback, never "unexpected", and
    holding each of ``words``."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("zoo: ")]
    assert len(lines) == 1, result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
