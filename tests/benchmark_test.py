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
        [
            sys.executable,
            "-m",
            "dvdgan_tf.benchmark",
            "--quick",
            "--precision=both",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REFERENCE" in proc.stdout and "matmul peak" in proc.stdout
    r = json.loads(out.read_text())
    assert r["errors"] == []
    peak = r["matmul_peak"]
    assert _positive(peak["gflops"])
    # The fp32 peak is the faster of tf.matmul and numpy's matmul, and says which.
    assert _positive(peak["tf_gflops"]) and _positive(peak["numpy_gflops"])
    assert peak["gflops"] == pytest.approx(max(peak["tf_gflops"], peak["numpy_gflops"]))
    source = (
        "tf.matmul" if peak["tf_gflops"] >= peak["numpy_gflops"] else "numpy.matmul"
    )
    assert peak["peak_source"] == source
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
    # The mixed_bfloat16 step: same convolutions, so the same FLOPs; its fraction of
    # peak is of the bfloat16 matmul peak.
    assert train["precision"] == "float32"
    bf16 = c["train"]["bf16_xla_off"]
    assert bf16["precision"] == "bfloat16"
    assert r["matmul_peak_bf16"]["dtype"] == "bfloat16"
    assert bf16["flops"]["total"] == train["flops"]["total"]
    peak_bf16 = r["matmul_peak_bf16"]["gflops"]
    assert bf16["fraction_of_peak"] == pytest.approx(bf16["gflops_per_s"] / peak_bf16)
    assert c["faster_xla"] == "xla_off" and c["faster_xla_bf16"] == "bf16_xla_off"
    assert "bf16 matmul peak" in proc.stdout
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


def test_plan_and_summary_with_both_precisions():
    jobs = dict(
        benchmark.plan(
            ["reference"], False, "off", 2, 1, False, False, 64, 1, precision="both"
        )
    )
    assert jobs[("matmul_peak",)].get("dtype", "float32") == "float32"
    assert jobs[("matmul_peak_bf16",)]["dtype"] == "bfloat16"
    fp32 = jobs[("configs", "reference", "train", "xla_off")]
    bf16 = jobs[("configs", "reference", "train", "bf16_xla_off")]
    assert (fp32["precision"], bf16["precision"]) == ("float32", "bfloat16")
    assert fp32["analytic"] and not bf16["analytic"]  # Counted once per config.
    # Hand-made measurements: each step's fraction is of its own precision's peak,
    # the reference point stays the float32 step, headroom is over the fastest step.
    step = {"flops": {"total": 1e11}, "peak_rss_mib": 1.0, "compile_s": 1.0}
    results = {
        "matmul_peak": {"gflops": 100.0},
        "matmul_peak_bf16": {"gflops": 400.0},
        "configs": {
            "reference": {
                "train": {
                    "xla_off": {**step, "precision": "float32", "xla": False,
                                "step_s": 2.0, "gflops_per_s": 50.0,
                                "clips_per_s": 2.0},
                    "bf16_xla_off": {**step, "precision": "bfloat16", "xla": False,
                                     "step_s": 0.5, "gflops_per_s": 200.0,
                                     "clips_per_s": 8.0},
                },
                "pipeline": {"builtin": {"clips_per_s": 80.0}},
            }
        },
    }  # fmt: skip
    benchmark.summarise(results)
    train = results["configs"]["reference"]["train"]
    assert train["xla_off"]["fraction_of_peak"] == pytest.approx(0.5)
    assert train["bf16_xla_off"]["fraction_of_peak"] == pytest.approx(0.5)
    assert results["reference"]["seconds_per_iteration"] == 2.0
    assert results["reference"]["fraction_of_peak"] == pytest.approx(0.5)
    pipeline = results["configs"]["reference"]["pipeline"]["builtin"]
    assert pipeline["headroom"] == pytest.approx(10.0)
    table = benchmark.format_tables(results)
    assert "bf16 matmul peak: 400.0" in table
    assert any(" bf16 off " in line and "0.5000" in line for line in table.splitlines())
    with pytest.raises(ValueError, match="'fp8'"):
        benchmark.run_benchmark(["reference"], precision="fp8")
