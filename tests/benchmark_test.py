"""Tests for dvdgan_tf.benchmark: the FLOP counter and the command's JSON (no timings)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from dvdgan_tf import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_count_flops_conv_forward_and_backward():
    n, h, w, c_in, c_out = 2, 8, 8, 3, 5
    x = tf.TensorSpec([n, h, w, c_in])
    kernel = tf.Variable(tf.random.normal([3, 3, c_in, c_out]))
    dense = tf.Variable(tf.random.normal([c_out, 7]))

    def step(x):
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, 1, "SAME")  # [n, h, w, c_out]
            z = tf.matmul(tf.reduce_mean(y, [1, 2]), dense)  # [n, 7]
            loss = tf.reduce_sum(z)
        return loss, tape.gradient(loss, [kernel, dense])

    flops = benchmark.count_flops(tf.function(step).get_concrete_function(x).graph)
    conv = 2 * n * h * w * c_out * 3 * 3 * c_in
    kinds = flops["by_kind"]
    assert kinds["conv_forward"] == conv
    assert kinds["conv_backprop_filter"] == conv
    # x needs no gradient: its backprop op is dead and must not be counted.
    assert kinds["conv_backprop_input"] == 0
    # Forward matmul (its loss is returned), the dense kernel's gradient, and its
    # input gradient (needed for the conv's filter gradient).
    assert kinds["matmul"] == 3 * 2 * n * c_out * 7
    assert flops["ops_with_unknown_shape"] == []


def test_reference_config_is_the_issue_reference_point():
    shape = benchmark.describe(benchmark.load("reference"))
    assert shape == {
        "resolution": 64,
        "num_frames": 8,
        "k": 8,
        "g_ch": 32,
        "d_ch": 32,
        "num_classes": 12,
        "batch_size": 4,
        "d_steps": 1,
    }


@pytest.mark.slow
def test_quick_benchmark_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dvdgan_tf.benchmark", "--quick", f"--out={out}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFERENCE" in proc.stdout and "matmul peak" in proc.stdout
    r = json.loads(out.read_text())
    assert r["errors"] == []
    assert _positive(r["matmul_peak"]["gflops"])
    assert r["meta"]["quick"] and r["meta"]["steps"] == 2
    (spec,) = r["configs"]
    assert spec == "reference:runlocal"
    c = r["configs"][spec]
    train = c["train"]["xla_off"]
    for key in ("compile_s", "step_s", "gflops_per_s", "fraction_of_peak"):
        assert _positive(train[key]), key
    assert len(train["step_times_s"]) == 2
    assert _positive(train["flops"]["total"])
    assert train["flops"]["ops_with_unknown_shape"] == []
    analytic = train["analytic_flops"]
    assert all(_positive(analytic[k]) for k in ("G", "D_S", "D_T", "train_step"))
    # Two independent FLOP counts agree to within 10%.
    assert abs(analytic["train_step"] / train["flops"]["total"] - 1) < 0.1
    for path in ("generator", "ema_export_uint8"):
        assert _positive(c["sampling"][path]["videos_per_s"])
    for source in ("builtin", "folder"):
        assert _positive(c["pipeline"][source]["clips_per_s"])
        assert _positive(c["pipeline"][source]["headroom"])
    for part in (train, c["sampling"], c["pipeline"]):
        assert _positive(part["peak_rss_mib"])
    ref = r["reference"]
    for key in ("seconds_per_iteration", "flops_per_iteration", "gflops_per_s"):
        assert _positive(ref[key]), key
    assert _positive(ref["fraction_of_peak"]) and _positive(ref["peak_rss_mib"])
