"""What the pictures add to a recipe build (``zoo pull realnvp-moons``): ``zoo.artifact.extras.render``
(samples.png over the density, training.png, history.json) for a moons-sized RealNVP, in a
fresh process each time, so that importing matplotlib is counted as a build pays it.

Target: well under 1 s on a 2-core machine (the build itself takes ~25 s). ``render_cpu_s``
is the CPU time of the same work: on a busy shared machine it is the steadier number.
Prints one JSON record; ``run()`` returns it. Also times the 64-image grid of ``zoo sample``
(PIL only).

    python -m benchmarks.bench_pictures
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, tempfile, time
from pathlib import Path
import torch
import zoo
from zoo import pictures
from zoo.artifact import extras

torch.manual_seed(0)
model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 8, "hidden": 64}).eval()
history = [{"step": s, "train_nll": 1.0 + 1.0 / s ** 0.5} for s in range(30, 3001, 30)]
for r in history:
    if r["step"] % 500 == 0:
        r["val_nll"] = r["train_nll"] + 0.03
images = torch.randint(0, 17, (64, 1, 8, 8))
with tempfile.TemporaryDirectory() as tmp:
    start, cpu = time.perf_counter(), time.process_time()
    extras.render(Path(tmp), model, title="realnvp-moons", history=history, best_step=3000,
                  steps=3000, test_nll=1.03)
    render, render_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    pictures.save_png(pictures.image_grid(images, 17), Path(tmp) / "grid.png")
    grid = time.perf_counter() - start
print(json.dumps({"render_s": render, "render_cpu_s": render_cpu, "grid_s": grid}))
"""


def run(repeats: int = 5) -> dict[str, object]:
    times: dict[str, list[float]] = {"render_s": [], "render_cpu_s": [], "grid_s": []}
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                             text=True)
        for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
            times[key].append(value)
    record: dict[str, object] = {"benchmark": "pictures", "target_s": 1.0, "repeats": repeats}
    for key, values in times.items():
        record[key] = {"best": min(values), "median": statistics.median(values)}
    return record


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
