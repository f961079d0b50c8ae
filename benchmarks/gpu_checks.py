"""The GPU paths, checked in one run on synthetic data: nothing is downloaded.

    python -m benchmarks.gpu_checks              # on a CUDA machine; prints JSON
    python -m benchmarks.gpu_checks --cpu        # a dry run of the same checks on the CPU

Checks, each a record in the JSON with ``ok`` and what was measured:

- ``bf16_training``: ``maximise_likelihood(..., device="cuda", bf16=True)`` on a tiny RealNVP: the forward
  pass runs in bfloat16 (autocast; seen at every linear layer), the weights stay float32,
  every loss is finite and the validation NLL improves.
- ``ddp``: with 2 or more GPUs, ``zoo.training.distributed.launch`` starts 2 NCCL ranks of the
  generic trainer; both must end with identical weights and ``world_size`` 2. With one GPU,
  a 1-rank NCCL group: an all-reduce and a DDP step (the NCCL path, without a second rank).
- ``tf32_off_while_sampling``: TF32 switched on globally; inside PixelCNN's samplers
  (fast and naive) it must be off at every pixel, and on again afterwards.
- ``made_fast_equals_naive`` / ``pixelcnn_fast_equals_naive``: the incremental sampler and
  the reference one give identical samples for the same CUDA generator (PixelCNN: with the
  number of pixels the fast sampler handed to the reference computation).

Without CUDA it prints a ``skipped`` record and exits 0; otherwise it exits 1 if any check
failed. ``--cpu`` runs every check on the CPU (gloo instead of NCCL) to show the script
itself works; the test suite runs it that way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def ring(n: int = 2048, seed: int = 0) -> torch.Tensor:
    """A noisy circle: synthetic two-dimensional training data."""
    g = torch.Generator().manual_seed(seed)
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.1 * torch.randn(n, 2, generator=g)


def tiny_flow() -> Any:
    from zoo.plugin.registry import get_family

    torch.manual_seed(0)
    return get_family("realnvp").build({"shape": [2], "couplings": 4, "hidden": 32})


def recipe(steps: int) -> Any:
    from zoo.catalog.recipe import Recipe

    return Recipe(steps=steps, batch_size=256, lr=3e-3, eval_every=max(1, steps // 4),
                  val_fraction=0.1, grad_clip=5.0)


def dataset() -> Any:
    """Any continuous dataset object: ``train_data`` replaces its data, nothing is loaded."""
    from zoo.plugin.registry import get_dataset

    return get_dataset("moons")


class MatmulDtypes(TorchDispatchMode):
    """Records the output dtype of every matrix product (``mm``, ``addmm``, ``bmm``) run while
    it is active, whichever module or function runs it: what autocast really computes in."""

    PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "linear", "convolution")

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ in self.PRODUCTS and isinstance(out, torch.Tensor):
            self.seen.append(out.dtype)
        return out


def check_bf16_training(device: str, steps: int = 200) -> dict[str, Any]:
    from zoo.training.loop import maximise_likelihood

    model = tiny_flow()
    with MatmulDtypes() as products:
        result = maximise_likelihood(model, dataset(), recipe(steps), device=device, bf16=True,
                                     progress=False, train_data=ring())
    seen = products.seen
    history = [r["val_nll"] for r in result.history if "val_nll" in r]
    finite = all(torch.isfinite(torch.tensor(r["train_nll"])) for r in result.history)
    weights = sorted({str(p.dtype) for p in model.parameters()})
    ok = (torch.bfloat16 in seen and weights == ["torch.float32"] and finite
          and history[-1] < history[0])
    return {"ok": ok, "bf16_forward": torch.bfloat16 in seen, "weights": weights,
            "val_nll_first": history[0], "val_nll_last": history[-1], "losses_finite": finite}


def ddp_worker(out: Path, device: str) -> None:
    """One rank of the ``ddp`` check (started by ``zoo.training.distributed.launch``)."""
    from safetensors.torch import save_file

    from zoo.training import distributed
    from zoo.training.loop import maximise_likelihood

    model = tiny_flow()
    result = maximise_likelihood(model, dataset(), recipe(20), device=device, progress=False,
                 train_data=ring())
    rank = distributed.context().rank
    flat = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    save_file({"flat": flat.contiguous()}, str(out / f"rank{rank}.safetensors"))
    (out / f"rank{rank}.json").write_text(json.dumps({"world_size": result.world_size}))


def check_ddp(device: str) -> dict[str, Any]:
    import torch.distributed as dist

    from zoo.training import distributed

    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda" and torch.cuda.device_count() < 2:
        return _one_rank_group(backend, device)
    one = _one_rank_group(backend, device) if device == "cpu" else None  # dry run: both paths
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as tmp:
        command = ["-m", "benchmarks.gpu_checks", "--ddp-worker", tmp,
                   "--device", device]
        distributed.launch(2, command)
        flats = [load_file(str(Path(tmp) / f"rank{r}.safetensors"))["flat"] for r in (0, 1)]
        sizes = [json.loads((Path(tmp) / f"rank{r}.json").read_text())["world_size"]
                 for r in (0, 1)]
    same = torch.equal(flats[0], flats[1])
    assert not dist.is_initialized()
    record = {"ok": same and sizes == [2, 2], "backend": backend, "ranks": 2,
              "world_sizes": sizes, "ranks_identical": same}
    if one is not None:
        record["ok"] = record["ok"] and one["ok"]
        record["one_rank_group"] = one
    return record


def _one_rank_group(backend: str, device: str) -> dict[str, Any]:
    """A 1-rank process group: the NCCL path (init, all-reduce, a DDP step) on one GPU."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from zoo.training.distributed import NegLogLikelihood, free_port

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    dev = torch.device(device, 0) if device == "cuda" else torch.device("cpu")
    dist.init_process_group(backend, rank=0, world_size=1,
                            device_id=dev if device == "cuda" else None)
    try:
        value = torch.tensor([3.0], device=dev)
        dist.all_reduce(value)
        model = tiny_flow().to(dev)
        objective = DistributedDataParallel(NegLogLikelihood(model),
                                            device_ids=[0] if device == "cuda" else None)
        loss = objective(ring(256).to(dev))
        loss.backward()
        grads = all(p.grad is not None and bool(torch.isfinite(p.grad).all())
                    for p in model.parameters() if p.requires_grad)
    finally:
        dist.destroy_process_group()
    return {"ok": float(value) == 3.0 and grads, "backend": backend, "ranks": 1,
            "all_reduce": float(value), "gradients_finite": grads}


def pixelcnn(device: str) -> Any:
    from zoo.plugin.registry import get_family

    torch.manual_seed(0)
    model = get_family("pixelcnn").build({"shape": [1, 8, 8], "levels": 4, "variant": "gated",
                                          "channels": 32, "layers": 4, "head_channels": 32})
    _perturb(model)
    return model.to(device).eval()


def made(device: str) -> Any:
    from zoo.plugin.registry import get_family

    torch.manual_seed(0)
    model = get_family("made").build({"shape": [1, 8, 8], "levels": 4, "hidden": [256, 256],
                                      "masks": 2, "ordering": "random", "direct": True})
    _perturb(model)
    return model.to(device).eval()


def _perturb(model: Any) -> None:
    """Move the weights off their initialisation: sharper, more dependent conditionals."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5 * p.std().clamp(min=0.05))


def check_tf32_off_while_sampling(device: str) -> dict[str, Any]:
    import zoo_pixelcnn.model as pixelcnn_model

    model = pixelcnn(device)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    seen: list[tuple[bool, bool]] = []
    real = pixelcnn_model.gumbel_noise

    def watched(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append((cudnn.allow_tf32, matmul.allow_tf32))  # once per row, both samplers
        return real(*args, **kwargs)

    cudnn.allow_tf32 = matmul.allow_tf32 = True
    pixelcnn_model.gumbel_noise = watched
    try:
        model.sample(4, generator=_generator(device, 0))
        model.sample_naive(4, generator=_generator(device, 0))
        restored = cudnn.allow_tf32 and matmul.allow_tf32
    finally:
        pixelcnn_model.gumbel_noise = real
        cudnn.allow_tf32, matmul.allow_tf32 = saved
    off = bool(seen) and not any(a or b for a, b in seen)
    return {"ok": off and restored, "pixels_checked": len(seen), "tf32_off_at_every_pixel": off,
            "restored_afterwards": restored}


def check_made_fast_equals_naive(device: str) -> dict[str, Any]:
    model = made(device)
    fast = model.sample(64, generator=_generator(device, 3))
    naive = model.sample_naive(64, generator=_generator(device, 3))
    same = torch.equal(fast, naive)
    return {"ok": same, "samples": 64, "differing_positions": int((fast != naive).sum())}


def check_pixelcnn_fast_equals_naive(device: str) -> dict[str, Any]:
    model = pixelcnn(device)
    fast = model.sample(64, generator=_generator(device, 3))
    stats = dict(model.sampling_stats)
    naive = model.sample_naive(64, generator=_generator(device, 3))
    same = torch.equal(fast, naive)
    return {"ok": same, "samples": 64, "differing_pixels": int((fast != naive).sum()),
            "pixels": stats.get("pixels"), "reference_steps": stats.get("reference_steps")}


def _generator(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


CHECKS: dict[str, Callable[[str], dict[str, Any]]] = {
    "bf16_training": check_bf16_training,
    "ddp": check_ddp,
    "tf32_off_while_sampling": check_tf32_off_while_sampling,
    "made_fast_equals_naive": check_made_fast_equals_naive,
    "pixelcnn_fast_equals_naive": check_pixelcnn_fast_equals_naive,
}


def run(device: str) -> dict[str, Any]:
    """Every check on ``device``; a check that raises is a failure with its error."""
    report: dict[str, Any] = {"device": device, "torch": torch.__version__, "checks": {}}
    if device == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
        report["gpus"] = torch.cuda.device_count()
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            record = check(device)
        except Exception as exc:
            record = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=4)}
        record["seconds"] = round(time.perf_counter() - start, 2)
        report["checks"][name] = record
    report["ok"] = all(r["ok"] for r in report["checks"].values())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="dry run of every check on the CPU")
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker is not None:
        ddp_worker(args.ddp_worker, args.device)
        return 0
    if not args.cpu and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device: nothing checked (use --cpu for a dry "
                          "run on the CPU)", "torch": torch.__version__}))
        return 0
    report = run("cpu" if args.cpu else "cuda")
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
