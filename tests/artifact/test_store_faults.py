"""The store under damage and sharing, and the sample command under absurd numbers: what
users and their tools do (issue 18). Each test failed on the code before its fix.

- Files follow the umask, as ``open()`` would (a second user of a shared store reads them).
- ``zoo verify`` meets an unreadable artifact: every artifact still gets its line.
- A missing model card is rebuilt; ``sample``, ``load`` and ``eval`` never retrain.
- A damaged ``config.json``: ``zoo pull`` says so, naming ``zoo pull --force NAME``.
- ``zoo sample``: a temperature whose samples overflow, a count beyond memory, a seed
  beyond 2**63-1, huge PNGs and ``.npy`` headers to ``--complete``.
- ``ZOO_HOME`` a file or a 4000-character path, a full disk, a failing write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faultkit
import numpy as np
import pytest
import torch
from catalogs import catalog, tiny_entry

import zoo
from zoo import api
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.cli import sample_files as sampling
from zoo.cli.commands import cli
from zoo.plugin.model import ZooModel

TINY = catalog(tiny_entry("tiny", recipe="val_fraction: 0.05"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture
def tiny(registry_file) -> Path:
    """The tiny entry, pulled into this test's store."""
    registry_file(TINY)
    return api.pull("tiny", progress=False)


@pytest.fixture
def no_training(monkeypatch):
    """Any training or download from now on fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("trained (or downloaded) without being asked")

    monkeypatch.setattr(api, "fetch_or_build", refuse)
    monkeypatch.setattr(api, "build_artifact", refuse)


def zoo_cli(runner, *args: str, code: int | None = 0):
    result = runner.invoke(cli, list(args))
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    return lines[0]


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- 3. files follow the umask ------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_follow_the_umask(registry_file, cli_runner, tmp_path, mask, mode):
    registry_file(TINY)
    with umask(mask):
        path = api.pull("tiny", progress=False)
        files = [path / f for f in store.FILES]
        for suffix in sampling.FORMATS:
            out = tmp_path / f"s{suffix}"
            zoo_cli(cli_runner, "sample", "tiny", "-n", "8", "-o", str(out))
            files.append(out)
    for file in files:
        assert file.stat().st_mode & 0o777 == mode, (file.name, oct(file.stat().st_mode))
    if mask == 0o022:
        faultkit.record("sharing", "umask 022 and 027: the artifact's three files and "
                        "`zoo sample -o` in all five formats", 2 * len(files),
                        "every file 0644 / 0640, as open() would make it (it was 0600)",
                        "a second user of a shared ZOO_HOME can load the model")


# -- 4. verify meets an unreadable artifact -------------------------------------------------

def without_file_access() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]


def test_verify_reports_every_artifact_when_one_is_unreadable(tiny, tmp_path):
    models = tiny.parent
    for name in ("a-first", "z-last"):
        shutil.copytree(tiny, models / name)
    locked = models / "tiny" / "model.safetensors"
    locked.chmod(0)
    try:
        env = faultkit.zoo_env(Path(os.environ["ZOO_HOME"]))
        done = subprocess.run([*without_file_access(), sys.executable, "-m", "zoo", "verify",
                               "--json"], env=env, capture_output=True, text=True, timeout=120)
    finally:
        locked.chmod(0o644)
    assert done.returncode == 1, done.stderr
    results = {r["name"]: r for r in json.loads(done.stdout)}
    assert sorted(results) == ["a-first", "tiny", "z-last"]
    assert results["a-first"]["ok"] and results["z-last"]["ok"]
    assert not results["tiny"]["ok"]
    assert results["tiny"]["problems"] == [f"cannot read {locked}: Permission denied"]
    assert done.stderr.strip() == "Error: 1 of 3 artifacts failed verification"
    faultkit.record("integrity", "`zoo verify` over 3 artifacts, one weights file unreadable "
                    "(EACCES)", 1, "every artifact got its line; the unreadable one BAD "
                    "with the file and \"Permission denied\"; exit 1", "untouched")


# -- 5. a missing model card ----------------------------------------------------------------

def test_a_missing_card_is_rebuilt_and_nothing_is_retrained(tiny, cli_runner, tmp_path,
                                                            no_training):
    weights = (tiny / "model.safetensors").read_bytes()
    card = (tiny / "README.md").read_text()
    (tiny / "README.md").unlink()
    zoo_cli(cli_runner, "sample", "tiny", "-n", "5", "-o", str(tmp_path / "s.csv"))
    assert (tiny / "README.md").read_text() == card  # rebuilt from config.json
    assert (tiny / "model.safetensors").read_bytes() == weights
    for call in (lambda: zoo.load("tiny"), lambda: zoo.evaluate("tiny"),
                 lambda: api.pull("tiny")):
        (tiny / "README.md").unlink()
        call()
        assert (tiny / "model.safetensors").read_bytes() == weights
    assert check(tiny) == () and store.leftovers() == []
    # An artifact folder given by path is only read: a missing card is a warning there.
    copy = shutil.copytree(tiny, tmp_path / "copy")
    (copy / "README.md").unlink()
    zoo.load(copy)
    assert not (copy / "README.md").exists()
    faultkit.record("integrity", "the model card (README.md) of a stored artifact deleted, "
                    "then `zoo sample`, load, eval, pull; and an artifact folder without one",
                    5, "the card rebuilt from config.json with a warning (the folder: only "
                    "a warning); nothing retrained", "the same weights, byte for byte; "
                    "verify ok")


# -- 6. a damaged config.json -----------------------------------------------------------------

DAMAGE = {
    "empty config.json": lambda p: (p / "config.json").write_text(""),
    "config.json of 10 MB of nesting": lambda p: (p / "config.json").write_text(
        "[" * 5_000_000 + "]" * 5_000_000),
    "config.json truncated": lambda p: (p / "config.json").write_text(
        (p / "config.json").read_text()[:40]),
    "config.json missing": lambda p: (p / "config.json").unlink(),
    "weights missing": lambda p: (p / "model.safetensors").unlink(),
    "a file where the folder was": lambda p: (shutil.rmtree(p), p.write_text("x")),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_artifact_is_reported_not_silently_used_or_retrained(
        tiny, cli_runner, tmp_path, monkeypatch, case):
    DAMAGE[case](tiny)
    with monkeypatch.context() as m:
        m.setattr(api, "fetch_or_build", lambda *a, **k: pytest.fail("retrained"))
        for args in (["pull", "tiny"], ["sample", "tiny", "-n", "3", "-o",
                                        str(tmp_path / "s.csv")], ["eval", "tiny"]):
            line = one_error_line(zoo_cli(cli_runner, *args, code=1))
            assert "damaged" in line and "run `zoo pull --force tiny`" in line, line
        assert not (tmp_path / "s.csv").exists()
    zoo_cli(cli_runner, "pull", "--force", "tiny", "-q")
    assert check(tiny) == () and store.leftovers() == []
    if case == "empty config.json":
        faultkit.record("integrity", "a stored artifact damaged: config.json empty, 10 MB "
                        "of nesting, truncated or missing; weights missing; a file in place "
                        "of the folder; then pull, sample, eval", 3 * len(DAMAGE),
                        "exit 1, one line: \"damaged ... run `zoo pull --force NAME`\"; "
                        "nothing retrained; `pull --force` repaired it", "after repair: "
                        "1 valid artifact, no leftovers")


# -- 7, 8, 9. sample: temperature, count, seed ------------------------------------------------

def test_a_temperature_whose_samples_overflow_is_refused(tiny, cli_runner, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "s.csv"
    for t in ("1e38", "1e300"):
        line = one_error_line(zoo_cli(cli_runner, "sample", "tiny", "-n", "100", "-t", t,
                                      "-o", str(out), code=1))
        assert "not finite" in line and f"temperature {float(t):g}" in line
        assert list(out.parent.iterdir()) == []
    zoo_cli(cli_runner, "sample", "tiny", "-n", "100", "-t", "1e3", "-o", str(out))
    assert np.isfinite(np.loadtxt(out, delimiter=",")).all()
    faultkit.record("numeric", "`zoo sample -t 1e38` and `-t 1e300` (samples overflow to "
                    "NaN)", 2, "exit 1, one line: the temperature gives samples that are "
                    "not finite", "no file written")


def test_the_python_api_refuses_samples_that_overflow_too():
    """``model.sample`` itself, not only ``zoo sample``: NaN or inf samples are never handed
    back, for a first-party flow and for a third-party model alike."""
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    with pytest.raises(ValueError, match="temperature 1e\\+300 gives samples that are not finite"):
        flow.sample(10, temperature=1e300)
    assert torch.isfinite(flow.sample(10, temperature=1e3)).all()

    class Overflowing(ZooModel):
        def log_prob(self, x):
            return -x.square().sum(-1)

        def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
            return torch.full((n, 2), temperature) * torch.finfo(torch.float32).max

    with pytest.raises(ValueError, match="not finite"):
        Overflowing().sample(3, temperature=4.0)
    assert torch.isfinite(Overflowing().sample(3, temperature=0.5)).all()


def test_a_sample_count_beyond_memory_is_refused_before_allocation(tiny, cli_runner, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for n in ("10000000000", str(2**62)):
        line = one_error_line(zoo_cli(cli_runner, "sample", "tiny", "-n", n, "-o",
                                      str(tmp_path / "s.npy"), code=1))
        assert line.startswith(f"Error: -n {n}: the samples would take") and "GB" in line
    assert list(tmp_path.iterdir()) == []
    faultkit.record("numeric", "`zoo sample -n 10000000000` and `-n 2**62`", 2,
                    "exit 1 before any allocation, one line naming -n, the memory and the "
                    "most it draws at once", "no file written")


def test_large_counts_are_drawn_in_batches(tiny, monkeypatch):
    model = zoo.load("tiny")
    sizes = []
    real = type(model).sample

    def spy(self, n, **kwargs):
        sizes.append(n)
        return real(self, n, **kwargs)

    monkeypatch.setattr(sampling, "BATCH_VALUES", 200)  # 100 two-value samples a batch
    monkeypatch.setattr(type(model), "sample", spy)
    x = sampling.draw(model, 250, seed=1)
    assert sizes == [100, 100, 50] and x.shape == (250, 2)
    assert torch.equal(sampling.draw(model, 250, seed=1), x)  # still reproducible


@pytest.mark.parametrize("command", [["sample", "tiny", "-n", "2"], ["train", "tiny"]])
def test_a_seed_beyond_its_range_names_the_range(tiny, cli_runner, command):
    result = zoo_cli(cli_runner, *command, "--seed", "99999999999999999999999", code=2)
    assert "0<=x<=9223372036854775807" in result.output and "Overflow" not in result.output
    if command[0] == "train":
        faultkit.record("numeric", "`--seed 99999999999999999999999` to sample and train", 2,
                        "usage error, exit 2: the range 0<=x<=9223372036854775807",
                        "nothing written")


def test_the_largest_seed_works(tiny, cli_runner, tmp_path):
    zoo_cli(cli_runner, "sample", "tiny", "-n", "2", "--seed", str(2**63 - 1), "-o",
            str(tmp_path / "s.csv"))


# -- 10. a store that is a file, a path too long, a full disk ---------------------------------

def test_a_store_that_is_a_file_is_an_error(cli_runner, registry_file, tmp_path, monkeypatch):
    registry_file(TINY)
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("ZOO_HOME", str(home))
    for args in (["verify"], ["pull", "tiny"], ["train", "tiny"]):
        line = one_error_line(zoo_cli(cli_runner, *args, code=1))
        assert f"{home} is not a directory" in line and "ZOO_HOME" in line
    assert home.read_text() == "not a folder"
    faultkit.record("store", "ZOO_HOME is a file (verify, pull, train)", 3,
                    "exit 1, one line: the store is not a directory, set ZOO_HOME (verify "
                    "said \"no artifacts\", exit 0)", "the file untouched")


def test_a_store_path_too_long_is_one_short_line(cli_runner, registry_file, tmp_path,
                                                 monkeypatch):
    registry_file(TINY)
    home = tmp_path / ("a" * 200) / ("b" * 4000)
    monkeypatch.setenv("ZOO_HOME", str(home))
    for args in (["verify"], ["pull", "tiny"]):
        line = one_error_line(zoo_cli(cli_runner, *args, code=1))
        assert "too long" in line and "set ZOO_HOME to a shorter folder" in line
        assert len(line) < 400
    faultkit.record("store", "ZOO_HOME of 4200 characters (verify, pull)", 2,
                    "exit 1, one line under 400 characters: the path shortened, \"set "
                    "ZOO_HOME to a shorter folder\"", "nothing written")


def test_a_failing_weights_write_names_the_file(tiny, cli_runner, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: "
                              "StorageFull, message: \"No space left on device\" })")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    before = faultkit.tree(tiny.parent)
    line = one_error_line(zoo_cli(cli_runner, "pull", "--force", "tiny", code=1))
    assert "model.safetensors: " in line and "No space left on device" in line
    assert "free some space, or set ZOO_HOME" in line
    assert faultkit.tree(tiny.parent) == before  # the old artifact, no leftovers
    faultkit.record("store", "the weights write of `zoo pull --force` failing with ENOSPC "
                    "(safetensors' error, which names no file)", 1, "exit 1, one line naming "
                    "model.safetensors' path and what to do (it was \"unexpected "
                    "SafetensorError\")", "the previous artifact, byte for byte; no leftovers")


FULL_DISK = r"""
set -e
mount -t tmpfs -o size={size} tmpfs "$ZOO_HOME"
{fill}
set +e
"$@"
code=$?
echo "left in models: [$(ls -A "$ZOO_HOME/models" 2>/dev/null)]"
exit $code
"""


def in_small_disk(home: Path, size: str, fill: bool, args: list[str], env: dict):
    """Run ``python -m zoo ARGS`` with ``home`` a tmpfs of ``size`` (full if ``fill``), in a
    mount namespace of its own (``unshare``); skips where that is not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare")
    home.mkdir(parents=True, exist_ok=True)
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    probe = subprocess.run([unshare, *flags, "sh", "-c", f"mount -t tmpfs tmpfs {home}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    script = FULL_DISK.format(size=size, fill='cat /dev/zero > "$ZOO_HOME/filler" 2>/dev/null '
                              '|| true' if fill else "")
    return subprocess.run([unshare, *flags, "sh", "-c", script, "sh", sys.executable, "-m",
                           "zoo", *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("fill", [True, False], ids=["full", "too-small"])
def test_a_full_disk_is_found_before_training(tmp_path, fill):
    registry = tmp_path / "r.yaml"
    # hidden 256: about 0.53 MB of weights, more than the 384 kB disk holds.
    registry.write_text(TINY.replace("hidden: 8", "hidden: 256"))
    home = tmp_path / "home"
    env = faultkit.zoo_env(home, registry, ZOO_FAULT_PAUSE="train-start", ZOO_FAULT_SECONDS="0")
    done = in_small_disk(home, "384k", fill, ["pull", "tiny"], env)
    assert done.returncode == 1, done.stderr
    assert "zoo-fault-point train-start" not in done.stderr  # refused before training
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and str(home) in line, line
    assert ("No space left on device" in line) if fill else ("not enough space" in line)
    assert "free some space, or set ZOO_HOME to a folder on another disk" in line
    assert "left in models: []" in done.stdout  # the staging folder was removed
    if not fill:
        faultkit.record("store", "`zoo pull` into a full store disk, and into one with "
                        "less room than the weights (384 kB tmpfs)", 2, "refused before "
                        "training, one line naming the path, the space and what to do (it "
                        "was a raw error after training)", "no artifact, no leftovers")


# -- also: --complete with huge PNGs and lying .npy headers ------------------------------------

@pytest.fixture
def discrete(tmp_path) -> Path:
    family = zoo.get_family("made")
    torch.manual_seed(0)
    return zoo.save(family.build({"shape": [1, 4, 4], "levels": 4}), tmp_path / "made")


def npy_claiming(path: Path, shape: tuple[int, ...]) -> Path:
    """A .npy whose header claims ``shape`` (int64) but which holds 16 values."""
    header = {"descr": "<i8", "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.zeros(16, dtype=np.int64).tobytes())
    return path


def png(path: Path, size: int) -> Path:
    """A grey PNG whose header says ``size`` x ``size`` (only a header: the size is what
    Pillow checks when it opens one, before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    if size <= 64:
        from PIL import Image

        Image.new("L", (size, size)).save(path)
        return path
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * (size + 1))) + chunk(b"IEND", b""))
    return path


def test_complete_refuses_huge_images_and_lying_headers(discrete, cli_runner, tmp_path):
    out = tmp_path / "out.npy"
    cases = {
        "20000x20000 PNG": (png(tmp_path / "bomb.png", 20000), "too large to read safely"),
        "10000x10000 PNG": (png(tmp_path / "big.png", 10000), "too large to read safely"),
        ".npy claiming 1e11 values": (npy_claiming(tmp_path / "a.npy", (100_000, 1_000_000)),
                                      "expected 16 values for shape [1, 4, 4]"),
        ".npy claiming 16 values, holding 2": (None, "truncated"),
    }
    short = tmp_path / "short.npy"
    np.save(short, np.zeros(16, dtype=np.int64))
    short.write_bytes(short.read_bytes()[:-112])
    cases[".npy claiming 16 values, holding 2"] = (short, "truncated")
    for name, (image, expect) in cases.items():
        result = zoo_cli(cli_runner, "sample", str(discrete), "-n", "2", "--complete",
                         str(image), "-o", str(out), code=1)
        line = one_error_line(result)
        assert expect in line and str(image) in line, (name, line)
        assert "Warning" not in result.output
        assert not out.exists()
    zoo_cli(cli_runner, "sample", str(discrete), "-n", "2", "--complete",  # 28x28: scaled
            str(png(tmp_path / "ok.png", 28)), "--resize", "-o", str(out))
    faultkit.record("hostile", "`zoo sample --complete`: PNGs of 20000² and 10000² pixels "
                    "(decompression bomb error and warning), a .npy header claiming 1e11 "
                    "values, a truncated .npy", len(cases), "exit 1, one line naming the file "
                    "and what the model takes; nothing decoded or allocated (it was an "
                    "\"unexpected\" error, MemoryError, or a raw warning)", "no file written")
