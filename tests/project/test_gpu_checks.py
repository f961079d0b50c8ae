"""benchmarks/gpu_checks.py: skips cleanly without CUDA, and its checks work (on the CPU)."""

from __future__ import annotations

import json

import torch

from benchmarks import gpu_checks


def test_without_cuda_it_skips_with_a_message_and_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_checks.main([]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "no CUDA" in out["skipped"]


def test_a_failing_check_makes_the_run_fail(monkeypatch, capsys):
    monkeypatch.setattr(gpu_checks, "CHECKS", {
        "fine": lambda device: {"ok": True},
        "broken": lambda device: 1 / 0,
    })
    assert gpu_checks.main(["--cpu"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["checks"]["fine"]["ok"]
    assert "ZeroDivisionError" in report["checks"]["broken"]["error"]




def test_the_sampling_checks_pass_on_the_cpu_and_catch_tf32_left_on(one_thread, monkeypatch):
    assert gpu_checks.check_made_fast_equals_naive("cpu")["ok"]
    assert gpu_checks.check_pixelcnn_fast_equals_naive("cpu")["ok"]
    assert gpu_checks.check_tf32_off_while_sampling("cpu")["ok"]

    import contextlib

    import zoo_pixelcnn.model

    monkeypatch.setattr(zoo_pixelcnn.model, "full_float32", contextlib.nullcontext)
    assert not gpu_checks.check_tf32_off_while_sampling("cpu")["ok"]


def test_bf16_and_one_rank_group_checks_pass_on_the_cpu(one_thread):
    record = gpu_checks.check_bf16_training("cpu", steps=40)
    assert record["ok"] and record["bf16_forward"], record
    assert gpu_checks._one_rank_group("gloo", "cpu")["ok"]
