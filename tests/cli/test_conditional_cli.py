"""Conditional models from the command line (issue 28): labels from an image folder's
subfolders, a table's --given columns and --label-column, --labels; zoo sample --label /
--given / --given-file; zoo classify; and bad input refused in one line, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo.cli import cli

pytestmark = pytest.mark.usefixtures("isolated_home", "one_thread")


@pytest.fixture
def class_folder(tmp_path):
    """Two classes of 4x4 grey pictures that differ: bright top rows, or bright bottom rows."""
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for name, rows in (("top", slice(0, 2)), ("bottom", slice(2, 4))):
        (root / name).mkdir(parents=True)
        for i in range(40):
            image = rng.integers(0, 60, (4, 4)).astype(np.uint8)
            image[rows] += 190
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def sin_table(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 400)
    y = np.sin(3 * x) + 0.1 * rng.normal(size=400)
    path = tmp_path / "sin.csv"
    np.savetxt(path, np.c_[x, y], delimiter=",", header="x,y", comments="")
    return path


def run(args: list[str]):
    """``zoo ARGS``, its result whatever the exit status (stderr apart)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


MADE = ["-c", "hidden=[32]", "--steps", "150", "-q"]


def test_an_image_folder_of_classes_trains_a_label_model_samples_and_classifies(
        tmp_path, class_folder):
    out = tmp_path / "m"
    done = run(["train", "made", "--data", str(class_folder), "-o", str(out), *MADE])
    assert done.exit_code == 0, done.output
    assert "label-conditional model: 2 classes" in done.stderr.splitlines()[0]
    assert "- conditioned on a label: 2 classes, `bottom`, `top`" in \
        (out / "README.md").read_text()  # the card lists the context
    done = run(["classify", str(out), "--data", str(class_folder), "-o",
                str(tmp_path / "p.csv")])
    assert done.exit_code == 0, done.output
    accuracy = float(done.output.split("accuracy ")[1].split()[0])
    assert accuracy > 0.9  # the classes differ in half of their pixels
    assert (tmp_path / "p.csv").read_text().startswith("index,class,probability\n0,bottom,")
    done = run(["sample", str(out), "--label", "top", "-n", "200", "-o",
                str(tmp_path / "top.npy"), "--seed", "0"])
    assert done.exit_code == 0, done.output
    top = np.load(tmp_path / "top.npy")
    assert top[:, 0, :2].mean() > top[:, 0, 2:].mean() + 10  # brighter rows on top (0..255)
    done = run(["sample", str(out), "--label", "all", "-n", "3", "-o", str(tmp_path / "a.png")])
    assert done.exit_code == 0 and "wrote 6 samples" in done.output
    unconditional = run(["train", "made", "--data", str(class_folder), "-o",
                         str(tmp_path / "u"), "--unconditional", *MADE])
    assert unconditional.exit_code == 0, unconditional.output
    assert '"classes": []' in (tmp_path / "u" / "config.json").read_text()


def test_a_table_given_column_learns_the_conditional(tmp_path, sin_table):
    out = tmp_path / "flow"
    done = run(["train", "realnvp", "--data", str(sin_table), "--given", "x", "-o", str(out),
                "--steps", "400", "-q"])
    assert done.exit_code == 0, done.output
    assert done.stderr.splitlines()[0].startswith("zoo: a conditional model: 1 given values")
    done = run(["sample", str(out), "--given", "x=0.5", "-n", "400", "-o",
                str(tmp_path / "y.csv"), "--seed", "1"])
    assert done.exit_code == 0, done.output
    y = np.loadtxt(tmp_path / "y.csv", delimiter=",", skiprows=1)
    assert abs(y.mean() - np.sin(1.5)) < 0.2  # y | x=0.5 is centred on sin(1.5)
    contexts = tmp_path / "c.csv"
    contexts.write_text("x\n-0.5\n0.5\n")
    done = run(["sample", str(out), "--given-file", str(contexts), "-o", str(tmp_path / "z.csv")])
    assert done.exit_code == 0 and "wrote 2 samples" in done.output
    done = run(["eval", str(out), "--data", str(sin_table)])
    assert done.exit_code == 0, done.output
    assert float(done.output.split("NLL")[1].split()[0]) < 0.5  # the Gaussian of y alone: ~0.9


def test_a_label_column_of_text(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,kind"] + [f"{rng.normal(3 * k):.4f},{rng.normal():.4f},{name}"
                           for k, name in ((0, "low"), (1, "high")) for _ in range(60)]
    table = tmp_path / "t.csv"
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m"
    done = run(["train", "realnvp", "--data", str(table), "--label-column", "kind", "-o",
                str(out), "--steps", "300", "-q"])
    assert done.exit_code == 0, done.output
    done = run(["classify", str(out), "--data", str(table)])
    assert done.exit_code == 0, done.output
    assert float(done.output.split("accuracy ")[1].split()[0]) > 0.9


@pytest.mark.parametrize("args, message", [
    (["--label", "sideways"], "'sideways' is not a class"),
    (["--given", "x=1"], "--given: this model is conditional on label"),
    (["--label", "all", "-o", "{tmp}/x.csv"], "--label all draws a picture"),
])
def test_bad_sampling_contexts_are_one_line(tmp_path, class_folder, args, message):
    out = tmp_path / "m"
    assert run(["train", "made", "--data", str(class_folder), "-o", str(out), *MADE]).exit_code == 0
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    target = tmp_path / "x.png"
    done = run(["sample", str(out), *args, *(["-o", str(target)] if "-o" not in args else [])])
    assert done.exit_code != 0
    assert message in done.output and "Traceback" not in done.output
    assert not target.exists() and not (tmp_path / "x.csv").exists()


def test_bad_training_contexts_are_one_line_and_write_nothing(tmp_path, sin_table, class_folder):
    cases = [
        (["--data", str(sin_table), "--given", "q"], "--given q: no such column"),
        (["--data", str(sin_table), "--label-column", "x", "--given", "y"], "one kind"),
    ]
    empty = tmp_path / "more"
    (empty / "a").mkdir(parents=True)
    (empty / "b").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(empty / "a" / "0.png")
    cases.append((["--data", str(empty)], "a class folder with no .png or .jpg images"))
    for args, message in cases:
        out = tmp_path / "never"
        done = run(["train", "realnvp" if "csv" in args[1] else "made", *args, "-o", str(out),
                    "--steps", "5", "-q"])
        assert done.exit_code != 0, args
        assert message in done.output and "Traceback" not in done.output, done.output
        assert not out.exists()


def test_an_unconditional_model_refuses_label_and_a_label_model_refuses_a_wrong_label_file(
        tmp_path, class_folder):
    plain = tmp_path / "plain"
    assert run(["train", "made", "--data", str(class_folder), "-o", str(plain),
                "--unconditional", *MADE]).exit_code == 0
    done = run(["sample", str(plain), "--label", "top", "-o", str(tmp_path / "x.png")])
    assert done.exit_code != 0 and "unconditional" in done.output
    done = run(["classify", str(plain), "--data", str(class_folder)])
    assert done.exit_code != 0 and "label-conditional" in done.output
