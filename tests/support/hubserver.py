"""A real Hugging Face Hub server on loopback for the tests: olah serving local git repositories.

olah (PyPI ``olah``) is a self-hosted Hub mirror that speaks the Hub's HTTP API. Started with
``offline = true`` and ``mirrors-path = [DIR]`` it serves the git repositories found at
``DIR/models/ORG/REPO`` (branch ``main``, tags, any commit) and nothing else; its upstream
(``hf-netloc``) is a loopback port where nothing listens, so no request can leave the machine.
Large files are committed as Git LFS pointers with the object stored where git-lfs keeps it,
``.git/lfs/objects/aa/bb/SHA256``, as on the real Hub.

Set ``ZOO_TEST_OLAH`` to the ``olah-cli`` executable when it is not on ``PATH`` (for
example when olah lives in a virtual environment of its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

OLAH_ENV = "ZOO_TEST_OLAH"
GIT_ENV = {"GIT_AUTHOR_NAME": "zoo tests", "GIT_AUTHOR_EMAIL": "tests@zoo.invalid",
           "GIT_COMMITTER_NAME": "zoo tests", "GIT_COMMITTER_EMAIL": "tests@zoo.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
START_TIMEOUT_S = 30.0


@dataclass
class HubServer:
    """A running olah server and the repositories it serves."""

    url: str
    mirrors: Path
    dead_url: str  # a loopback URL where nothing listens: "the network is down"
    commits: dict[str, list[str]] = field(default_factory=dict)  # repo -> commits, oldest first
    artifacts: dict[str, Path] = field(default_factory=dict)  # label -> local artifact folder
    log: Path | None = None


def olah_executable() -> str | None:
    """``olah-cli``: from ``ZOO_TEST_OLAH``, else on ``PATH``."""
    return os.environ.get(OLAH_ENV) or shutil.which("olah-cli")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lfs_pointer(data: bytes) -> tuple[str, str]:
    """The Git LFS pointer text for ``data`` and its sha256 (the LFS object id)."""
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n", oid


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                         text=True)
    return out.stdout.strip()


def commit_files(repo: Path, files: dict[str, bytes], message: str, *,
                 lfs: tuple[str, ...] = ("model.safetensors",),
                 lfs_bytes: dict[str, bytes] | None = None) -> str:
    """Commit ``files`` into the git repository ``repo`` (created on branch ``main`` if
    needed) and return the commit hash. Files named in ``lfs`` are committed as LFS pointers;
    ``lfs_bytes`` can store different bytes as the LFS object than the pointer describes
    (a repository whose large file got spoiled)."""
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    for name, data in files.items():
        if name in lfs:
            pointer, oid = lfs_pointer(data)
            obj = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes((lfs_bytes or {}).get(name, data))
            (repo / name).write_text(pointer)
        else:
            (repo / name).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_config(path: Path, *, port: int, mirrors: Path, dead_port: int) -> None:
    path.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{path.parent / "olah-repos"}"\n'
        'hf-scheme = "http"\n'
        f'hf-netloc = "127.0.0.1:{dead_port}"\n'
        f'hf-lfs-netloc = "127.0.0.1:{dead_port}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "\n[accessibility]\n"
        "offline = true\n"
    )


@contextlib.contextmanager
def running_olah(workdir: Path, mirrors: Path) -> Iterator[HubServer]:
    """Start olah on a free loopback port serving ``mirrors``; stop it on exit."""
    exe = olah_executable()
    if exe is None:
        pytest.skip(f"olah-cli not found (pip install olah, or set {OLAH_ENV})")
    port, dead_port = free_port(), free_port()
    config = workdir / "olah.toml"
    write_config(config, port=port, mirrors=mirrors, dead_port=dead_port)
    log = workdir / "olah.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        # olah writes its logs and caches under the working directory: keep them in workdir.
        proc = subprocess.Popen([exe, "-c", str(config)], cwd=workdir, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_until_up(proc, url, log)
        yield HubServer(url=url, mirrors=mirrors, dead_url=f"http://127.0.0.1:{dead_port}",
                        log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"olah exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/models/zoo/none/revision/main", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered: a "not found" is an answer
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"olah did not answer within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


def tiny_artifact(path: Path, *, seed: int, name: str = "tiny-moons") -> Path:
    """Build and save a tiny RealNVP for moons (scored on the real test split) at ``path``."""
    import torch

    import zoo

    torch.manual_seed(seed)
    model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    with torch.no_grad():  # a fresh flow is the identity map whatever the seed: make it not
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    test = zoo.evaluate(model, dataset="moons", batch_size=20000)
    metrics = {"test_nll": test.nll, "test_nll_stderr": test.stderr,
               "bits_per_dim": test.bits_per_dim, "test_n": float(test.n)}
    return zoo.save(model, path, name=name, dataset="moons", description="A tiny test flow.",
                    metrics=metrics, source={"kind": "test", "seed": seed})


def artifact_files(path: Path) -> dict[str, bytes]:
    from zoo.artifact.io import FILES

    return {name: (path / name).read_bytes() for name in FILES}


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny RealNVP artifacts for moons with different weights, ``A`` and ``B``."""
    import torch

    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("artifacts")
    return {"A": tiny_artifact(work / "A", seed=0), "B": tiny_artifact(work / "B", seed=1)}


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory,
               tiny_artifacts: dict[str, Path]) -> Iterator[HubServer]:
    """olah on loopback serving three repositories built from real artifacts:

    - ``acme/moons``: commit 1 holds artifact ``A`` (tagged ``v1``), commit 2 (``main``) ``B``;
    - ``acme/corrupt``: artifact ``A`` whose LFS weights object was spoiled after commit;
    - ``acme/notzoo``: a repository of some other library (no ``model.safetensors``).
    """
    if olah_executable() is None:
        pytest.skip(f"olah-cli not found (pip install olah, or set {OLAH_ENV})")
    work = tmp_path_factory.mktemp("hub")
    mirrors = work / "mirrors"
    built = tiny_artifacts
    commits: dict[str, list[str]] = {}
    moons = mirrors / "models" / "acme" / "moons"
    commits["acme/moons"] = [commit_files(moons, artifact_files(built["A"]), "artifact A")]
    git(moons, "tag", "v1")
    commits["acme/moons"].append(commit_files(moons, artifact_files(built["B"]), "artifact B"))
    spoiled = bytearray(artifact_files(built["A"])["model.safetensors"])
    spoiled[-1] ^= 0xFF  # one spoiled byte in the last tensor: still loads, wrong values
    commits["acme/corrupt"] = [commit_files(
        mirrors / "models" / "acme" / "corrupt", artifact_files(built["A"]), "spoiled",
        lfs_bytes={"model.safetensors": bytes(spoiled)})]
    commits["acme/notzoo"] = [commit_files(
        mirrors / "models" / "acme" / "notzoo",
        {"README.md": b"# not a zoo model\n", "config.json": b'{"model_type": "bert"}\n'},
        "other library")]
    with running_olah(work, mirrors) as server:
        server.commits = commits
        server.artifacts = built
        yield server
