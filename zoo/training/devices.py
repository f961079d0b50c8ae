"""Where training runs: choosing a device, bf16 autocast, and ``torch.compile`` with a fallback.

Nothing in zoo assumes a device: the trainer asks ``resolve_device`` once and moves the
model there; models create their noise and masks on their own parameters' device and dtype.
``torch.compile`` is optional and never fatal: a model that dynamo or the backend cannot
compile trains eagerly after one warning.
"""

from __future__ import annotations

import contextlib
import os
import platform
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError, stop_behind

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device | None = "auto", *, local_rank: int = 0) -> torch.device:
    """The device ``spec`` names: ``auto`` is CUDA when present, else the CPU.

    ``cuda`` without an index means this process's GPU (``cuda:LOCAL_RANK`` under torchrun).
    Asking for CUDA where there is none is a ``ConfigError`` that says so, not a crash later.
    """
    if isinstance(spec, torch.device):
        device = spec
    else:
        text = (spec or "auto").strip().lower()
        if text == "auto":
            text = "cuda" if torch.cuda.is_available() else "cpu"
        if text == "cuda":
            text = f"cuda:{local_rank}"
        try:
            device = torch.device(text)
        except RuntimeError:
            raise ConfigError(
                f"device: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {spec!r}"
            ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {spec!r}: CUDA is not available here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto"
            )
        index = device.index if device.index is not None else local_rank
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device cuda:{index}: only {torch.cuda.device_count()} GPU(s) visible"
            )
        device = torch.device("cuda", index)
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when ``bf16`` is set; a no-op context otherwise.

    Only the forward pass runs under it: parameters, gradients and the optimizer stay in
    float32, and the trainer averages the loss in float32.
    """
    if not bf16:
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class CompiledOrEager(nn.Module):
    """Calls a ``torch.compile``-d version of ``module``, and ``module`` itself if that fails.

    ``torch.compile`` reports most problems only at the first call (dynamo cannot trace, the
    backend cannot build). When the compiled call raises and the eager call of the same
    input succeeds, the failure was the compiler's: warn once and stay eager from then on.
    When the eager call fails too, its error is the model's and is raised as is. A stop
    (Ctrl-C, a stop signal) that reached the compiler is raised whatever it was wrapped in.
    """

    def __init__(self, module: nn.Module, backend: str | Callable[..., Any] = "inductor"):
        super().__init__()
        self.module = module
        self.compiled: Callable[..., Any] | None
        try:
            compiled = torch.compile(module, backend=backend)
        except Exception as exc:  # an unknown backend name, a platform without dynamo
            self._give_up(exc)
        else:
            # Not a submodule: the compiled wrapper shares ``module``'s parameters, and
            # registering it would list them twice.
            object.__setattr__(self, "compiled", compiled)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.module(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:
            if stop_behind(exc) is not None:  # Ctrl-C mid-compile, wrapped: not a failure
                raise
            out = self.module(*args, **kwargs)
            self._give_up(exc)
            return out

    def _give_up(self, exc: BaseException) -> None:
        object.__setattr__(self, "compiled", None)
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        warnings.warn(
            f"torch.compile failed ({type(exc).__name__}: {reason}); training continues eagerly",
            RuntimeWarning,
            stacklevel=3,
        )


#: ``compile="auto"`` compiles runs of at least this many steps. Compiling takes tens of
#: seconds on a CPU with an empty inductor cache (20 s for realnvp's 8 affine couplings on
#: the quiet 2-core machine, minutes when it is loaded; docs/performance.md), all of it
#: before the first step, and saves about 1 ms of realnvp's 3 ms step but only 0.4 ms of
#: MADE's 7 ms on 28x28 images: 24,000 steps of MADE (made-binarized-mnist-cpu, and the
#: defaults for 60,000 binary images) waited 19 to 32 s for their first step and got it
#: back only at the end. So the catalog's CPU recipes (1,300 to 24,000 steps) stay eager,
#: and the long GPU recipes (50,000 steps and more) compile.
AUTO_COMPILE_MIN_STEPS = 40_000


def compile_pays(device: torch.device, steps: int) -> bool:
    """Whether ``compile="auto"`` compiles: a long run, on a device inductor can build for
    here (a C++ compiler for CPUs, triton for CUDA)."""
    if steps < AUTO_COMPILE_MIN_STEPS:
        return False
    if device.type == "cuda":
        import importlib.util

        return importlib.util.find_spec("triton") is not None
    if device.type == "cpu":
        import shutil

        return any(shutil.which(cxx) for cxx in (os.environ.get("CXX", "g++"), "g++", "c++"))
    return False


def resolve_compile(compile: bool | str | Callable[..., Any] | None, device: torch.device,
                    steps: int) -> bool | str | Callable[..., Any]:
    """``"auto"`` settled for this run (``True`` when ``compile_pays``); other values as given."""
    if isinstance(compile, str) and compile == "auto":
        return compile_pays(device, steps)
    return False if compile is None else compile


def maybe_compile(module: nn.Module, compile: bool | str | Callable[..., Any] = False) -> nn.Module:
    """``module`` itself, or wrapped by ``CompiledOrEager`` when ``compile`` asks for it.

    ``compile`` is ``False``, ``True`` (the default inductor backend), or a backend (a name
    such as ``"eager"``/``"aot_eager"``, or a callable, as ``torch.compile`` takes).
    """
    if compile is False or compile is None:
        return module
    return CompiledOrEager(module, "inductor" if compile is True else compile)


def describe_machine(device: torch.device | None = None) -> dict[str, Any]:
    """The machine a number was measured on: CPU, cores, threads, GPU, library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if device is not None:
        info["device"] = str(device)
    if torch.cuda.is_available():
        index = device.index if device is not None and device.type == "cuda" else 0
        props = torch.cuda.get_device_properties(index or 0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info
