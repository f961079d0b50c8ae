"""Hostile or unusual data files (issue 24, items 13-16): headers that claim absurd or
negative shapes, safetensors headers that are nested too deeply, lie about a dtype or
point into the file's own header, and big-endian arrays.

Each refusal is one line naming the file (never numpy's or safetensors' message alone,
never "unexpected"); the big-endian file is read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import faultkit
import numpy as np
import pytest
import torch

import zoo
from zoo.cli.commands import cli


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture
def vec(tmp_path) -> Path:
    return faultkit.tiny_flow(tmp_path / "vec")


def npy_with_header(path: Path, shape: tuple, descr: str = "<f4", data: bytes = b"\0" * 64):
    """A .npy file whose header says ``shape``, followed by ``data`` (written by hand: numpy
    would refuse to write such a header)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
                     + data)
    return path


def safetensors_with_header(path: Path, header: bytes | dict, data: bytes = b"\0" * 16):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def refused(cli_runner, vec, data: Path, *words: str) -> str:
    result = cli_runner.invoke(cli, ["score", str(vec), "--data", str(data)])
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output, result.output
    assert str(data) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


HUGE = 2**32


def test_npy_headers_with_absurd_or_negative_shapes_are_refused_naming_the_file(
        tmp_path, vec, cli_runner):
    # Item 13: "array is too big" / "negative dimensions are not allowed", no file named;
    # numpy's int64 product of (2**32, 2**32) wrapped round to 0.
    refused(cli_runner, vec, npy_with_header(tmp_path / "huge.npy", (HUGE, HUGE)),
            "truncated", "73786976294838206592 bytes")
    refused(cli_runner, vec, npy_with_header(tmp_path / "neg.npy", (-1, 2)),
            "non-negative integers")


def test_safetensors_with_an_absurd_shape_is_refused_with_the_true_size(tmp_path, vec,
                                                                      cli_runner):
    header = {"x": {"dtype": "F32", "shape": [HUGE, HUGE], "data_offsets": [0, 16]}}
    refused(cli_runner, vec, safetensors_with_header(tmp_path / "huge.safetensors", header),
            "73786976294838206464 bytes")  # it said "needs 0 bytes"


def test_safetensors_nested_too_deeply_or_with_a_fake_bf16_entry_is_one_line(
        tmp_path, vec, cli_runner):
    # Item 14: "unexpected RecursionError", "unexpected SafetensorError".
    deep = b"[" * 100_000 + b"]" * 100_000
    refused(cli_runner, vec, safetensors_with_header(tmp_path / "deep.safetensors", deep, b""),
            "nested too deeply")
    fake = {"x": {"dtype": "BF16", "shape": [4, 2], "data_offsets": [0, 1600]}}
    refused(cli_runner, vec, safetensors_with_header(tmp_path / "bf.safetensors", fake),
            "BF16")


def test_complete_from_a_hostile_safetensors_is_one_line(tmp_path, cli_runner):
    # Item 14: `--complete garbage.safetensors` ended "unexpected SafetensorError".
    torch.manual_seed(0)
    model = zoo.save(zoo.get_family("pixelcnn").build({"shape": [1, 4, 4], "levels": 4}),
                     tmp_path / "px")
    cases = {"garbage.safetensors": b"\x00" * 3 + b"not a safetensors file" * 4,
             "deep.safetensors": None, "neg.safetensors": None}
    (tmp_path / "garbage.safetensors").write_bytes(cases["garbage.safetensors"])
    safetensors_with_header(tmp_path / "deep.safetensors", b"[" * 100_000 + b"]" * 100_000, b"")
    safetensors_with_header(tmp_path / "neg.safetensors", {"x": {
        "dtype": "I64", "shape": [2], "data_offsets": [-16, 0]}})
    for name in cases:
        result = cli_runner.invoke(cli, ["sample", str(model), "-n", "2", "--complete",
                                         str(tmp_path / name), "-o", str(tmp_path / "c.png")])
        assert str(tmp_path / name) in faultkit.refused_line(result)
    assert not (tmp_path / "c.png").exists()


def test_a_real_bf16_file_is_still_read(tmp_path, vec, cli_runner):
    from safetensors.torch import save_file

    save_file({"x": torch.randn(6, 2).to(torch.bfloat16)}, str(tmp_path / "ok.safetensors"))
    result = cli_runner.invoke(cli, ["score", str(vec), "--data", str(tmp_path / "ok.safetensors")])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) >= 7  # header + 6 scores (+ the note)


def test_safetensors_offsets_into_its_own_header_are_refused(tmp_path, vec, cli_runner):
    # Item 15: data_offsets [-16, 16] was accepted, and bytes of the header scored as data.
    for begin, end in ((-16, 0), (-16, 16)):
        header = {"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [begin, end]}}
        refused(cli_runner, vec, safetensors_with_header(tmp_path / "neg.safetensors", header),
                "data_offsets", "non-negative")


def test_a_big_endian_npy_is_read(tmp_path, vec, cli_runner):
    # Item 16: refused with torch's byte-order message.
    values = np.random.default_rng(0).standard_normal((20, 2))
    np.save(tmp_path / "be.npy", values.astype(">f8"))
    np.save(tmp_path / "le.npy", values.astype("<f8"))
    scores = [cli_runner.invoke(cli, ["score", str(vec), "--data", str(tmp_path / name)])
              for name in ("be.npy", "le.npy")]
    assert all(s.exit_code == 0 for s in scores), scores[0].output
    assert scores[0].stdout == scores[1].stdout
    assert zoo.score(vec, tmp_path / "be.npy").shape == (20,)


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for this module, written once its tests have run."""
    yield
    faultkit.record("hostile", "data files: .npy headers of shape (2**32, 2**32) and "
                    "(-1, 2); .safetensors of shape [2**32, 2**32], a header 100,000 brackets "
                    "deep, a fake BF16 entry, data_offsets [-16, 0] and [-16, 16] (`zoo score`); "
                    "garbage, a deep header and negative offsets to `--complete`", 10,
                    "exit 1, one line naming the file and the true size or the bad field "
                    "(it was numpy's or safetensors' message, \"unexpected\", or the header's "
                    "own bytes scored as data)", "nothing written")
    faultkit.record("hostile", "a big-endian float64 .npy, and a real BF16 .safetensors", 2,
                    "scored, the same scores as the little-endian file (it was torch's "
                    "byte-order error)", "nothing written")
