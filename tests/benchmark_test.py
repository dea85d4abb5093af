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
    assert train["graph_optimizations"] is False  # reference:runlocal's own setting
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


def test_graph_optimizations_from_the_flag_else_each_config():
    runlocal, full = benchmark.load("reference:runlocal"), benchmark.load("reference")
    assert benchmark._graph_optimizations({}, runlocal) is False
    assert benchmark._graph_optimizations({}, full) is True
    assert benchmark._graph_optimizations({"graph_optimizations": "on"}, runlocal)
    assert not benchmark._graph_optimizations({"graph_optimizations": "off"}, full)
    args = (["reference"], False, "off", 2, 1, False, False, 64, 1)
    jobs = benchmark.plan(*args, graph_optimizations="off")
    assert all(spec["graph_optimizations"] == "off" for _, spec in jobs)
    assert all("graph_optimizations" not in spec for _, spec in benchmark.plan(*args))


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


def test_kernel_groups_run_each_traced_op_alone():
    n, h, w, c_in, c_out = 2, 6, 6, 3, 4
    x = tf.random.normal([n, h, w, c_in], seed=1)
    k1 = tf.Variable(tf.random.normal([3, 3, c_in, c_out], seed=2))
    k2 = tf.Variable(tf.random.normal([3, 3, c_in, c_out], seed=3))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, k1, 1, "SAME")  # [n, h, w, c_out]
            loss = tf.reduce_sum(y * y) + tf.reduce_sum(tf.nn.conv2d(x, k2, 1, "SAME"))
        return loss, tape.gradient(loss, [x, k1])

    graph = tf.function(step).get_concrete_function(tf.TensorSpec(x.shape)).graph
    groups = benchmark.kernel_groups(graph)
    by_type = {g["type"]: g for g in groups}
    # Two same-shaped forward convs (and their input gradients) are one group of two
    # each; k2 needs no gradient.
    assert sorted(by_type) == ["Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"]
    assert len(groups) == 3 and by_type["Conv2D"]["count"] == 2
    assert by_type["Conv2DBackpropInput"]["count"] == 2
    assert by_type["Conv2DBackpropFilter"]["count"] == 1
    total = sum(g["flops"] * g["count"] for g in groups)
    assert total == benchmark.count_flops(graph)["total"]

    # Each group, run alone on the traced step's own tensors, is the op the step ran.
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.conv2d(x, k1, 1, "SAME")
    dy = 2 * y  # d loss / d y of the first conv.
    dx, dk = tape.gradient(y, [x, k1], output_gradients=dy)
    fn, args = benchmark.kernel_fn(by_type["Conv2D"])
    assert [args["input"].shape, args["filter"].shape] == [x.shape, k1.shape]
    got = fn(input=x, filter=k1)
    assert float(tf.reduce_max(tf.abs(got - y))) < 1e-5
    fn, args = benchmark.kernel_fn(by_type["Conv2DBackpropFilter"])
    assert args["filter_sizes"].numpy().tolist() == [3, 3, c_in, c_out]
    got = fn(input=x, filter_sizes=args["filter_sizes"], out_backprop=dy)
    assert float(tf.reduce_max(tf.abs(got - dk))) < 1e-4
    fn, args = benchmark.kernel_fn(by_type["Conv2DBackpropInput"])
    assert args["input_sizes"].numpy().tolist() == [n, h, w, c_in]
    got = fn(input_sizes=args["input_sizes"], filter=k1, out_backprop=dy)
    assert float(tf.reduce_max(tf.abs(got - dx))) < 1e-4


@pytest.mark.slow
def test_kernels_task_times_every_op_of_the_train_step(monkeypatch):
    spec = "reference:runlocal"
    # Timing all ~150 groups takes a minute: the task times the six largest here,
    # and the wrapper keeps every group of the task's own traced step.
    seen, all_groups = {}, benchmark.kernel_groups

    def six_largest(graph):
        seen["groups"], seen["flops"] = all_groups(graph), benchmark.count_flops(graph)
        return seen["groups"][:6]

    monkeypatch.setattr(benchmark, "kernel_groups", six_largest)
    r = benchmark.task_kernels({"config": spec, "warmup": 0, "steps": 1})
    groups, flops = seen["groups"], seen["flops"]
    # Every counted op of the step is in exactly one group, largest FLOPs first.
    assert sum(g["count"] for g in groups) == flops["ops_counted"] > 100
    totals = [g["flops"] * g["count"] for g in groups]
    assert sum(totals) == flops["total"] and totals == sorted(totals, reverse=True)
    assert len(r["rows"]) == 6 and r["ops"] == sum(g["count"] for g in groups[:6])
    assert r["gflop_per_step"] * 1e9 == pytest.approx(sum(totals[:6]))
    for row in r["rows"]:
        assert _positive(row["seconds"]) and 1 <= row["repeats"] <= 200
        assert row["s_per_step"] == pytest.approx(row["seconds"] * row["count"])
    assert r["kernel_s_per_step"] == pytest.approx(
        sum(x["s_per_step"] for x in r["rows"])
    )
    assert _positive(r["step_s"])
    kinds = r["by_kind"]
    assert sum(k["gflop_per_step"] for k in kinds.values()) == pytest.approx(
        r["gflop_per_step"]
    )
    assert set(kinds) <= {"conv_forward", "conv_backprop_input", "conv_backprop_filter",
                          "matmul"}  # fmt: skip
    # Summary and table: each op's fraction is of its precision's peak.
    results = {"matmul_peak": {"gflops": 100.0}, "configs": {spec: {"kernels": {}}}}
    results["configs"][spec]["kernels"]["float32"] = r
    benchmark.summarise(results)
    row = r["rows"][0]
    assert row["fraction_of_peak"] == pytest.approx(row["gflops_per_s"] / 100.0)
    table = benchmark.format_tables(results)
    assert f"Kernels alone: {spec} (float32, no XLA)" in table
    assert row["type"] in table


def test_plan_times_kernels_for_full_size_configs_only():
    specs = ["reference", "reference:runlocal"]
    jobs = dict(benchmark.plan(specs, False, "off", 2, 1, False, False, 64, 1,
                               precision="both", kernels=True))  # fmt: skip
    kernels = {k: v for k, v in jobs.items() if v["task"] == "kernels"}
    assert sorted(kernels) == [
        ("configs", "reference", "kernels", "bfloat16"),
        ("configs", "reference", "kernels", "float32"),
    ]
    assert kernels[("configs", "reference", "kernels", "bfloat16")]["precision"] == (
        "bfloat16"
    )
    quick = benchmark.plan(specs, True, "off", 2, 1, False, False, 64, 1, kernels=True)
    assert not [s for _, s in quick if s["task"] == "kernels"]
