"""Speed, memory and FLOP utilisation: `python -m dvdgan_tf.benchmark` (issue 8).

  python -m dvdgan_tf.benchmark                       # every config, ~15-25 min on 2 cores
                                                      # (+5-10 for --kernels, on by default)
  python -m dvdgan_tf.benchmark --configs=reference --xla=on --out=/tmp/bench.json
  python -m dvdgan_tf.benchmark --quick               # tiny smoke run, ~1.5 min
  python -m dvdgan_tf.benchmark --configs=configs/synthetic_actions_cpu.py \
      --precision=both --xla=off --scaling=false --profile=false   # fp32 vs bf16

Configs (`--configs`, comma list): a config spec `configs/x.py[:runlocal]`, or
`reference` (64x64, T=8, k=8, batch 4, g_ch = d_ch = 32 with the BigGAN 64x64
tables, 12 classes, d_steps=1; `reference:runlocal` is its smoke-sized stand-in).
Default: the `:runlocal` variant of every file in `configs/`, the default CPU config
`configs/synthetic_actions_cpu.py`, and `reference`.

Method. The parent process only orchestrates: every measurement runs in a fresh
subprocess (`--worker=JSON`), so each reported peak RSS (`ru_maxrss`) is that
measurement's own, XLA caches never leak between runs, and one failure is recorded
(`errors` in the JSON) without stopping the rest. Threads: TF's defaults, or
`--intra_op_threads` / `--inter_op_threads` for every measurement. Train steps run
with each config's `runtime.conv_input_grad` and `runtime.graph_optimizations`
(Grappler; runlocal: off) unless `--conv_input_grad` / `--graph_optimizations` say
otherwise.

- matmul peak: a 4096x4096 float32 matmul (2*n^3 FLOPs), best of `--matmul_reps`,
  measured in the same run as everything else, twice: `tf.matmul` in a
  `tf.function` and numpy's (its BLAS); the peak is the faster. On a 2-vCPU
  AVX2-only AMD EPYC `tf.matmul` reached 90 GFLOP/s, numpy 189 and 3x3
  convolutions 144-156 (Eigen's: TF had left oneDNN off), so `tf.matmul` alone
  understated the peak and the train steps came out at >100% of it (BENCHMARKS.md).
  Whether oneDNN was on is recorded (`onednn`) and printed with the peak. With
  `--precision=bfloat16|both` also a bfloat16 one (`matmul_peak_bf16`), the peak
  that bfloat16 train steps are a fraction of.
- precision (`--precision`): the train step under Keras's float32 policy (results
  keyed `xla_off` / `xla_on`) and/or its `mixed_bfloat16` one, as
  `runtime.mixed_precision="bfloat16"` trains (float32 variables, bfloat16
  convolutions; keyed `bf16_xla_off` / `bf16_xla_on`). On a CPU bfloat16 is fast
  only with hardware for it (AMX-BF16 or AVX512_BF16); elsewhere it is emulated.
- train step: `tf.function(gan.train_step, jit_compile=xla)` on a fixed random batch
  videos [d_steps*B, T, H, W, 3], labels [d_steps*B] (so no input pipeline cost).
  `compile_s` is the first call (trace + XLA compile + one step); then `--warmup`
  untimed steps, then the median of `--steps` timed steps (a value is fetched to the
  host after each, so the timing covers the whole step). One train step = d_steps D
  updates + one G update + the EMA update, i.e. one "iteration".
- FLOPs per train step, multiply-add = 2, convolutions and matmuls only (BN,
  activations, optimizer and EMA updates are elementwise and not counted). Primary
  (`graph`): every Conv2D/Conv3D/MatMul op *and their backprop ops* (Conv*Backprop-
  Input/Filter, emitted by autodiff) in the traced train-step graph, each counted
  as 2 * (elements of the forward output or its gradient) * (kernel size * C_in)
  from static shapes, after pruning ops whose results nothing uses (the input
  gradient of D's first conv in the D step, for instance). Cross-check
  (`analytic`): forward FLOPs of G, D_S, D_T counted the same way on forward-only
  graphs, combined by the textbook rule backward = 2x forward:
      d_steps * (F_G + 6 F_D) + 3 F_G + 2 F_D + F_G,   F_D = F_DS + F_DT
  (D step: G forward, D forward + backward on real and fake; G step: G forward +
  backward, D forward + input-gradient only; EMA: one training-mode forward of the
  EMA generator, which updates its BatchNorm statistics). `tf.compat.v1.profiler`'s
  float_operation() is not used: it registers only forward Conv2D/Conv3D, so it
  misses the backward two thirds of a train step. Achieved GFLOP/s = graph FLOPs /
  median step time; `fraction_of_peak` divides by the matmul peak.
- sampling: videos/s of `tf.function(G(z, y, training=False))` (float, the raw
  generator) and of the EMA/export path: the EMA generator exported with
  `export.export_generator`, reloaded with `tf.saved_model.load`, and called through
  its `serving_default` signature (uint8 video, input checks included) — exactly
  what TF Serving runs. Batch = config eval.batch_size, no XLA. DVD-GAN-FP configs
  also feed random conditioning frames [B, C, H, W, 3] (uint8 to the export).
- input pipeline: clips/s of `data.build_dataset(config, "train", d_steps*B)` for the
  built-in in-memory dataset and for a folder dataset of 24 small mp4 clips written
  with imageio and cached once by `prepare_folder` (cache time reported apart).
  `headroom` = pipeline clips/s over the clips/s the train step consumes.
- scaling (`--scaling`): G forward+backward, D_S and D_T forward+backward (grads to
  weights and input) timed separately at a small config (ch 16, batch 4, k 4), for
  T in {4, 8, 16} at 32x32 and for resolution in {16, 32, 64} at T=8; no XLA (XLA's
  compile time would dominate). Expected: G and D_T ~linear in T, D_S flat.
- profile (`--profile`): the TF profiler's framework_op_stats over 3 steps of the
  reference train step without XLA (XLA fuses ops, hiding which kind costs what):
  self time per op type, to say where the time goes.
- kernels (`--kernels`, configs other than `:runlocal`): the train step (no XLA) timed
  as above, then every conv/matmul op of its graph run alone through `tf.raw_ops`
  with its traced shapes, attributes and constant sizes on random inputs (ops alike
  grouped, `count` per step), small ops repeated in a sequential `tf.while_loop` so
  the ~1 ms call overhead is spread. Their summed time against the step says whether
  the step is bound by its convolution kernels (sum ~ step: nothing outside them to
  remove) or by what lies between them (sum << step); each op's GFLOP/s against the
  peak says which kernels are slow. On the AVX2-only EPYC the kernels alone took 103%
  of the default config's step (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, NamedTuple

from absl import app, flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG_DIR = os.path.join(_REPO, "configs")
DEFAULT_CONFIG = "configs/synthetic_actions_cpu.py"
REFERENCE = "reference"

_CONFIGS = flags.DEFINE_list(
    "configs",
    None,
    "Config specs (configs/x.py[:runlocal]) or 'reference'; default: every config's "
    ":runlocal variant, the default CPU config and the reference point.",
)
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON to this file.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed train steps (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after the first call.")
_XLA = flags.DEFINE_enum("xla", "both", ["both", "on", "off"], "XLA for the step.")
_PRECISION = flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "bfloat16", "both"],
    "Train-step precision: float32, Keras mixed_bfloat16 (float32 variables), both.",
)
_QUICK = flags.DEFINE_bool(
    "quick",
    False,
    "Smoke run for tests: tiny configs, 1 warm-up, 2 timed steps, XLA off, small "
    "matmul, no scaling or profile.",
)
_SCALING = flags.DEFINE_bool("scaling", True, "Measure step time vs T and resolution.")
_PROFILE = flags.DEFINE_bool("profile", True, "Op-type profile of the reference step.")
_KERNELS = flags.DEFINE_bool(
    "kernels",
    True,
    "Time each conv/matmul kernel of the train step alone (configs other than "
    ":runlocal ones, no XLA).",
)
_MATMUL_N = flags.DEFINE_integer("matmul_n", 4096, "Size of the peak matmul.")
_MATMUL_REPS = flags.DEFINE_integer("matmul_reps", 5, "Timed peak matmuls.")
_TIMEOUT = flags.DEFINE_integer("worker_timeout", 1800, "Seconds per measurement.")
_INTRA = flags.DEFINE_integer(
    "intra_op_threads", 0, "TF intra-op threads in every measurement (0: default)."
)
_INTER = flags.DEFINE_integer(
    "inter_op_threads", 0, "TF inter-op threads in every measurement (0: default)."
)
_CONV_INPUT_GRAD = flags.DEFINE_enum(
    "conv_input_grad",
    "",
    ["", "forward", "native"],
    "runtime.conv_input_grad for every train-step measurement ('': each config's).",
)
_GRAPPLER = flags.DEFINE_enum(
    "graph_optimizations",
    "",
    ["", "on", "off"],
    "runtime.graph_optimizations (Grappler) for every train-step measurement ('': "
    "each config's; runlocal: off).",
)
_WORKER = flags.DEFINE_string("worker", "", "Internal: run one measurement (JSON).")
_WORKER_OUT = flags.DEFINE_string("worker_out", "", "Internal: worker result file.")


# -- configs --------------------------------------------------------------------
def reference_config(runlocal: bool = False):
    """The issue's reference point: 64x64, T=8, k=8, batch 4, width 32, d_steps=1."""
    from dvdgan_tf import config_lib

    c = config_lib.base_config()
    c.model.resolution = 64
    c.model.num_frames = 8
    c.model.k = 8
    c.model.g_ch = 32
    c.model.d_ch = 32
    c.model.num_classes = 12
    c.data.name = "synthetic_actions"
    c.train.batch_size = 4
    c.train.d_steps = 1
    c.eval.batch_size = 4
    if runlocal:
        config_lib.runlocal(c)
    return config_lib.finalize(c)


def load(spec: str):
    """A finalised config for `spec` (a config file spec or 'reference[:runlocal]')."""
    from dvdgan_tf import config_lib

    name, _, arg = spec.partition(":")
    if name == REFERENCE:
        if arg not in ("", "runlocal"):
            raise ValueError(f"unknown reference variant {arg!r} in {spec!r}")
        return reference_config(arg == "runlocal")
    path = name if os.path.isabs(name) else os.path.join(_REPO, name)
    return config_lib.load_config(f"{path}:{arg}" if arg else path)


def small_config(resolution: int, num_frames: int, ch: int = 16, batch: int = 4):
    """The scaling study's model: BigGAN tables (16x16: the 32x32 G table cut short)."""
    from dvdgan_tf import config_lib

    c = config_lib.base_config()
    c.model.resolution = resolution
    c.model.num_frames = num_frames
    c.model.k = min(4, num_frames)
    c.model.g_ch = c.model.d_ch = ch
    c.model.num_classes = 12
    c.train.batch_size = batch
    if resolution == 16:
        c.model.g_multipliers = ((4, 4), (4, 4))
        c.model.dt_multipliers = (4, 4, 4)
    return config_lib.finalize(c)


def default_specs(quick: bool) -> list[str]:
    if quick:  # The reference point's smoke-sized stand-in only.
        return [f"{REFERENCE}:runlocal"]
    files = sorted(
        f for f in os.listdir(_CONFIG_DIR) if f.endswith(".py") and f[0] != "_"
    )
    return [f"configs/{f}:runlocal" for f in files] + [DEFAULT_CONFIG, REFERENCE]


def describe(config) -> dict:
    m, t = config.model, config.train
    return {
        "resolution": m.resolution,
        "num_frames": m.num_frames,
        "k": m.k,
        "g_ch": m.g_ch,
        "d_ch": m.d_ch,
        "num_classes": m.num_classes,
        "batch_size": t.batch_size,
        "d_steps": t.d_steps,
    }


# -- measurement helpers (worker side) ------------------------------------------
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _sync(x) -> None:
    """Fetches one scalar to the host so that the timed work has really finished.

    A numpy result is already on the host (numpy returns when it is done): nothing
    to fetch, and copying it into a tensor would add to the measured time.
    """
    import numpy as np
    import tensorflow as tf

    t = tf.nest.flatten(x)[0]
    if isinstance(t, np.ndarray):
        return
    tf.reshape(t, [-1])[0].numpy()


def _time_calls(fn, args, warmup: int, steps: int) -> dict:
    """First call (compile) time, then `warmup` untimed and `steps` timed calls."""
    t0 = time.perf_counter()
    _sync(fn(*args))
    first = time.perf_counter() - t0
    for _ in range(warmup):
        _sync(fn(*args))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        _sync(fn(*args))
        times.append(time.perf_counter() - t0)
    return {
        "first_call_s": first,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
    }


_FWD_CONV = ("Conv2D", "Conv3D", "DepthwiseConv2dNative")
_BWD_INPUT = ("Conv2DBackpropInput", "Conv3DBackpropInputV2", "Conv3DBackpropInput")
_BWD_FILTER = ("Conv2DBackpropFilter", "Conv3DBackpropFilterV2", "Conv3DBackpropFilter")
_MATMUL = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _live_ops(graph) -> list:
    """Ops whose results reach the function's outputs or its stateful updates."""
    seen, stack = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in seen]


def _prod(shape) -> int:
    return math.prod(int(d) for d in shape)


def op_flops(op) -> tuple[str, int] | None:
    """(kind, FLOPs) of one conv/matmul op from its static shapes (multiply-add = 2),
    None for any other op; raises TypeError/ValueError for an unknown dimension."""
    if op.type in _FWD_CONV:  # y [N, ..., C_out], kernel [k.., C_in, C_out]
        f = 2 * _prod(op.outputs[0].shape) * _prod(op.inputs[1].shape[:-1])
        return "conv_forward", f
    if op.type in _BWD_INPUT:  # (sizes, kernel, dy)
        f = 2 * _prod(op.inputs[2].shape) * _prod(op.inputs[1].shape[:-1])
        return "conv_backprop_input", f
    if op.type in _BWD_FILTER:  # (x, sizes, dy) -> d kernel
        f = 2 * _prod(op.inputs[2].shape) * _prod(op.outputs[0].shape[:-1])
        return "conv_backprop_filter", f
    if op.type in _MATMUL:  # [.., m, n] output, contraction k from a
        a = op.inputs[0].shape
        adj = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        return "matmul", 2 * _prod(op.outputs[0].shape) * int(a[-2] if adj else a[-1])
    return None


def count_flops(graph) -> dict:
    """Conv/matmul FLOPs (multiply-add = 2) of the live ops of a traced graph."""
    by_kind = {"conv_forward": 0, "conv_backprop_input": 0, "conv_backprop_filter": 0}
    by_kind["matmul"] = 0
    unknown, ops = [], 0
    functions = {
        op.type for op in graph.get_operations() if "PartitionedCall" in op.type
    }
    for op in _live_ops(graph):
        try:
            counted = op_flops(op)
        except (TypeError, ValueError):  # a dimension unknown at trace time
            unknown.append(op.name)
            continue
        if counted is None:
            continue
        by_kind[counted[0]] += counted[1]
        ops += 1
    return {
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "ops_counted": ops,
        "ops_with_unknown_shape": unknown[:10],
        "nested_function_ops": sorted(functions),  # would hide FLOPs; expected empty
    }


def _attr_json(value):
    """An op attribute as JSON (bytes as str, a dtype as {"dtype": name})."""
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "as_datatype_enum"):
        return {"dtype": value.name}
    if isinstance(value, list):
        return [_attr_json(v) for v in value]
    return value


def _attr_value(value):
    """Inverse of `_attr_json`, as `tf.raw_ops` takes it."""
    import tensorflow as tf

    if isinstance(value, dict):
        return tf.as_dtype(value["dtype"])
    return value


def kernel_groups(graph) -> list[dict]:
    """The conv/matmul ops of a traced graph, as kernels that can run on their own.

    Live ops with the same type, input shapes and dtypes, constant integer inputs
    (a backprop op's sizes) and attributes form one group: `count` of them run per
    call of the graph, `flops` each (`op_flops`). Sorted by total FLOPs, largest first.
    """
    import tensorflow as tf

    groups: dict[str, dict] = {}
    for op in _live_ops(graph):
        try:
            counted = op_flops(op)
        except (TypeError, ValueError):  # a dimension unknown at trace time
            continue
        if counted is None:
            continue
        inferred = {a.type_attr for a in op.op_def.input_arg if a.type_attr}
        attrs = {
            a.name: _attr_json(op.get_attr(a.name))
            for a in op.op_def.attr
            if a.name not in inferred
        }
        inputs = []
        for arg, t in zip(op.op_def.input_arg, op.inputs):
            value = tf.get_static_value(t) if t.dtype.is_integer else None
            if value is not None:
                value = value.tolist()  # an ndarray or a numpy scalar
            elif t.dtype.is_integer:
                # A backprop op's sizes input, computed at run time (a Shape op): it
                # is the shape of the op's own output, static in the traced graph.
                if op.type not in _BWD_INPUT + _BWD_FILTER:
                    raise ValueError(f"{op.name}: integer input {arg.name} not static")
                value = [int(d) for d in op.outputs[0].shape]
            inputs.append(
                {
                    "name": arg.name,
                    "shape": [int(d) for d in t.shape],
                    "dtype": t.dtype.name,
                    "value": value,
                }
            )
        group = {"type": op.type, "kind": counted[0], "inputs": inputs, "attrs": attrs}
        key = json.dumps(group, sort_keys=True)
        if key not in groups:
            groups[key] = {**group, "flops": counted[1], "count": 0}
        groups[key]["count"] += 1
    return sorted(groups.values(), key=lambda g: -g["flops"] * g["count"])


def kernel_fn(group: dict, seed: int = 0):
    """(fn, args): `fn(**args)` runs the group's op alone (`tf.raw_ops`) on random
    inputs of its shapes and dtypes, its constant inputs as traced."""
    import tensorflow as tf

    op = getattr(tf.raw_ops, group["type"])
    attrs = {k: _attr_value(v) for k, v in group["attrs"].items()}
    rng = tf.random.Generator.from_seed(seed)
    args = {}
    for i in group["inputs"]:
        if i["value"] is not None:
            args[i["name"]] = tf.constant(i["value"], dtype=i["dtype"])
        else:
            args[i["name"]] = tf.cast(rng.normal(i["shape"]), i["dtype"])

    def fn(**inputs):
        return op(**inputs, **attrs)

    return fn, args


def _random_batch(config, seed: int = 0):
    import tensorflow as tf

    from dvdgan_tf import config_lib

    m, t = config.model, config.train
    n = t.d_steps * t.batch_size
    g = tf.random.Generator.from_seed(seed)
    shape = [n, config_lib.clip_frames(m), m.resolution, m.resolution, 3]
    videos = g.uniform(shape, -1.0, 1.0)  # [d_steps*B, C+T, H, W, 3] (C = 0 but FP)
    labels = g.uniform([n], 0, m.num_classes, dtype=tf.int32)  # [d_steps*B]
    return videos, labels


def _forward_flops(gan, config) -> dict:
    """Forward FLOPs (training mode) of G, D_S and D_T, and the analytic step total."""
    import tensorflow as tf

    from dvdgan_tf import config_lib

    m, t = config.model, config.train
    b, r, c = t.batch_size, m.resolution, m.conditioning_frames
    video = tf.TensorSpec([b, config_lib.clip_frames(m), r, r, 3])  # [B, C+T, H, W, 3]
    labels = tf.TensorSpec([b], tf.int32)
    z = tf.TensorSpec([b, m.z_dim])
    frames = tf.TensorSpec([b, c, r, r, 3]) if c else None  # DVD-GAN-FP's input
    fg = count_flops(
        tf.function(lambda z, y, f: gan.generator(z, y, training=True, frames=f))
        .get_concrete_function(z, labels, frames)
        .graph
    )["total"]
    fds, fdt = (
        count_flops(
            tf.function(lambda v, y, d=d: d(v, y, training=True))
            .get_concrete_function(video, labels)
            .graph
        )["total"]
        for d in (gan.spatial_discriminator, gan.temporal_discriminator)
    )
    fd = fds + fdt
    # D steps; G step (G forward + backward, D forward + input gradient); with
    # train.ema_statistics="forward" the EMA generator's statistics forward
    # (model._update_ema), one more G forward ("copy": none).
    ema = fg if t.get("ema_statistics", "forward") == "forward" else 0
    step = t.d_steps * (fg + 6 * fd) + 3 * fg + 2 * fd + ema
    return {"G": fg, "D_S": fds, "D_T": fdt, "train_step": step}


def _conv_input_grad(spec: dict, config) -> str:
    """The measurement's runtime.conv_input_grad: --conv_input_grad, else the config's."""
    return spec.get("conv_input_grad") or config.runtime.get(
        "conv_input_grad", "forward"
    )


def _graph_optimizations(spec: dict, config) -> bool:
    """The measurement's runtime.graph_optimizations: --graph_optimizations, else
    the config's."""
    if spec.get("graph_optimizations"):
        return spec["graph_optimizations"] == "on"
    return config.runtime.get("graph_optimizations", True)


def task_matmul(spec: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from dvdgan_tf import runtime

    n, reps = spec["n"], spec["reps"]
    dtype = spec.get("dtype", "float32")
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
    flops = 2 * n**3
    results = {"tf.matmul": _time_calls(tf.function(tf.matmul), (a, b), 1, reps)}
    if dtype == "float32":  # numpy has no bfloat16 matmul.
        a_np, b_np = a.numpy(), b.numpy()
        results["numpy.matmul"] = _time_calls(np.matmul, (a_np, b_np), 1, reps)
    gflops = {k: flops / min(r["times_s"]) / 1e9 for k, r in results.items()}
    source = max(gflops, key=gflops.get)
    r = results[source]
    best = min(r["times_s"])
    out = {"tf_gflops": gflops["tf.matmul"], "peak_source": source}
    if "numpy.matmul" in gflops:
        out["numpy_gflops"] = gflops["numpy.matmul"]
    return {
        "n": n,
        "reps": reps,
        "dtype": dtype,
        "best_s": best,
        "gflops": flops / best / 1e9,
        "median_gflops": flops / r["median_s"] / 1e9,
        **out,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "cpu_count": os.cpu_count(),
        "tf_version": tf.__version__,
        "onednn": runtime.onednn_enabled(),
    }


class _TracedStep(NamedTuple):
    config: Any
    precision: str
    conv_input_grad: str
    graph_optimizations: bool
    gan: Any
    batch: tuple
    step: Any  # tf.function of gan.train_step, traced once for `batch`
    graph: Any
    build_s: float
    trace_s: float


def _traced_step(spec: dict, xla: bool) -> _TracedStep:
    """The measured train step of spec["config"]: sets the spec's precision (before
    any layer is built), conv_input_grad and graph optimizations, builds the GAN,
    makes a random batch
    and traces `train_step` once for it (the calls that follow reuse the trace)."""
    import tensorflow as tf

    from dvdgan_tf import layers, runtime
    from dvdgan_tf.model import DVDGAN

    config = load(spec["config"])
    precision = spec.get("precision", "float32")
    conv_input_grad = _conv_input_grad(spec, config)
    runtime.set_precision(precision)
    layers.set_conv_input_grad(conv_input_grad)
    grappler = runtime.set_graph_optimizations(_graph_optimizations(spec, config))
    t0 = time.perf_counter()
    gan = DVDGAN.from_config_dict(config, jit_compile=xla)
    build_s = time.perf_counter() - t0
    batch = _random_batch(config)
    step = tf.function(gan.train_step, jit_compile=xla)
    t0 = time.perf_counter()
    graph = step.get_concrete_function(batch).graph
    trace_s = time.perf_counter() - t0
    return _TracedStep(
        config,
        precision,
        conv_input_grad,
        grappler,
        gan,
        batch,
        step,
        graph,
        build_s,
        trace_s,
    )


def task_train(spec: dict) -> dict:
    s = _traced_step(spec, spec["xla"])
    config, gan = s.config, s.gan
    flops = count_flops(s.graph)
    r = _time_calls(s.step, (s.batch,), spec["warmup"], spec["steps"])
    out = {
        "xla": spec["xla"],
        "precision": s.precision,
        "conv_input_grad": s.conv_input_grad,
        "graph_optimizations": s.graph_optimizations,
        "build_s": s.build_s,
        "trace_s": s.trace_s,
        "compile_s": s.trace_s + r["first_call_s"],
        "step_s": r["median_s"],
        "best_step_s": r["min_s"],
        "step_times_s": r["times_s"],
        "flops": flops,
        "gflops_per_s": flops["total"] / r["median_s"] / 1e9,
        "clips_per_s": config.train.d_steps * config.train.batch_size / r["median_s"],
        "num_params": {
            "G": sum(_prod(w.shape) for w in gan.generator.trainable_weights),
            "D": sum(_prod(v.shape) for v in gan.discriminator_variables),
        },
    }
    if spec.get("analytic"):
        out["analytic_flops"] = _forward_flops(gan, config)
    return out


def _export_path(gan, config, tmp: str):
    """The EMA generator's serving signature: a SavedModel from `dvdgan_tf.export`,
    reloaded (what TF Serving runs)."""
    import tensorflow as tf

    from dvdgan_tf import export

    path = export.export_generator(
        gan.ema_generator, os.path.join(tmp, "1"), config.to_json()
    )
    serve = tf.saved_model.load(path).signatures["serving_default"]
    if config.model.conditioning_frames:  # DVD-GAN-FP: uint8 frames in, too.
        return (
            lambda z, y, f: serve(label=y, z=z, frames=f)
        ), "SavedModel serving_default (with frames)"
    return (lambda z, y: serve(label=y, z=z)), "SavedModel serving_default"


def task_sample(spec: dict) -> dict:
    import tensorflow as tf

    from dvdgan_tf import export
    from dvdgan_tf.model import DVDGAN

    config = load(spec["config"])
    gan = DVDGAN.from_config_dict(config)
    m, b = config.model, config.eval.batch_size
    z = tf.random.normal([b, m.z_dim])
    y = tf.random.uniform([b], 0, m.num_classes, dtype=tf.int32)
    args = {"generator": (z, y), "ema_export_uint8": (z, y)}
    if m.conditioning_frames:  # DVD-GAN-FP predicts from C frames [B, C, H, W, 3].
        res = m.resolution
        frames = tf.random.uniform([b, m.conditioning_frames, res, res, 3], -1.0, 1.0)
        args["generator"] += (frames,)  # float32 in [-1, 1], as G takes them
        args["ema_export_uint8"] += (export.video_to_uint8(frames),)  # as served
    out = {"batch_size": b}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export_fn, how = _export_path(gan, config, tmp)
        export_s = time.perf_counter() - t0
        paths = {
            "generator": tf.function(
                lambda z, y, f=None: gan.generator(z, y, training=False, frames=f)
            ),
            "ema_export_uint8": export_fn,
        }
        for name, fn in paths.items():
            r = _time_calls(fn, args[name], spec["warmup"], spec["steps"])
            out[name] = {
                "videos_per_s": b / r["median_s"],
                "batch_s": r["median_s"],
                "first_call_s": r["first_call_s"],
            }
    out["ema_export_uint8"].update(path=how, export_and_load_s=export_s)
    return out


def _write_clips(root: str, resolution: int, frames: int, n: int = 24) -> None:
    """n small mp4 clips (3 classes) at 3:2 aspect, so the pipeline resizes and crops."""
    import imageio.v3 as iio
    import numpy as np

    from dvdgan_tf.data import synthetic

    h = max(32, resolution)
    w = h * 3 // 2
    clips, labels = synthetic.make_clips(n, num_frames=frames, resolution=w, seed=1)
    for i, (clip, label) in enumerate(zip(clips, labels)):
        d = os.path.join(root, f"class{int(label) % 3}")
        os.makedirs(d, exist_ok=True)
        top = (w - h) // 2
        video = np.ascontiguousarray(clip[:, top : top + h])  # [L, h, w, 3]
        iio.imwrite(os.path.join(d, f"clip{i:02d}.mp4"), video, fps=8)


def _pipeline_rate(config, batch: int, warmup: int, batches: int) -> dict:
    from dvdgan_tf import data

    it = iter(data.build_dataset(config, "train", batch))
    t0 = time.perf_counter()
    for _ in range(max(warmup, 1)):
        next(it)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    dt = time.perf_counter() - t0
    return {"clips_per_s": batches * batch / dt, "batches": batches, "warmup_s": first}


def task_pipeline(spec: dict) -> dict:
    import copy

    config = load(spec["config"])
    batch = config.train.d_steps * config.train.batch_size
    warmup, batches = spec["warmup"], spec["batches"]
    builtin = copy.deepcopy(config)
    builtin.data.name = "synthetic_actions"
    builtin.data.num_train_examples = max(
        builtin.data.num_train_examples, batch * (warmup + batches + 1)
    )
    out = {
        "batch_size": batch,
        "builtin": _pipeline_rate(builtin, batch, warmup, batches),
    }
    if spec.get("folder", True):
        from dvdgan_tf import config_lib
        from dvdgan_tf.data import folder

        m = config.model
        frames = (config_lib.clip_frames(m) - 1) * config.data.frame_stride + 4
        with tempfile.TemporaryDirectory() as tmp:
            root, data_dir = os.path.join(tmp, "clips"), os.path.join(tmp, "tfds")
            t0 = time.perf_counter()
            _write_clips(root, m.resolution, frames)
            write_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            folder.prepare_folder(root, data_dir, m.resolution, frames - 3)
            prepare_s = time.perf_counter() - t0
            cfg = copy.deepcopy(config)
            cfg.data.name = f"folder:{root}"
            cfg.data.data_dir = data_dir
            cfg.data.shuffle_buffer = 24
            out["folder"] = {
                **_pipeline_rate(cfg, batch, warmup, batches),
                "num_clips": 24,
                "write_s": write_s,
                "prepare_s": prepare_s,
            }
    return out


def _component_fns(gan, config):
    """tf.functions: G forward+backward, D_S and D_T forward+backward (weights, input)."""
    import tensorflow as tf

    g, ds, dt = gan.generator, gan.spatial_discriminator, gan.temporal_discriminator

    @tf.function
    def g_step(z, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(g(z, y, training=True))
        return tape.gradient(loss, g.trainable_variables)

    def d_fn(d):
        @tf.function
        def step(video, y):
            with tf.GradientTape() as tape:
                tape.watch(video)
                loss = tf.reduce_mean(d(video, y, training=True))
            return tape.gradient(loss, [video, *d.trainable_variables])

        return step

    return {"G": g_step, "D_S": d_fn(ds), "D_T": d_fn(dt)}


def task_scaling(spec: dict) -> dict:
    import tensorflow as tf

    from dvdgan_tf.model import DVDGAN

    tf.get_logger().setLevel("ERROR")  # New functions per point: retracing is expected.
    points = [(32, t) for t in spec["frames"]]
    points += [(r, 8) for r in spec["resolutions"] if (r, 8) not in points]
    rows = []
    for res, frames in points:
        config = small_config(res, frames)
        gan = DVDGAN.from_config_dict(config)
        m, b = config.model, config.train.batch_size
        z = tf.random.normal([b, m.z_dim])
        y = tf.random.uniform([b], 0, m.num_classes, dtype=tf.int32)
        video = tf.random.uniform([b, frames, res, res, 3], -1.0, 1.0)
        row = {"resolution": res, "num_frames": frames, "k": m.k, "batch_size": b}
        for name, fn in _component_fns(gan, config).items():
            args = (z, y) if name == "G" else (video, y)
            r = _time_calls(fn, args[name], spec["warmup"], spec["steps"])
            row[f"{name}_s"] = r["median_s"]
        rows.append(row)
    return {"ch": 16, "xla": False, "rows": rows}


def task_profile(spec: dict) -> dict:
    import glob

    import tensorflow as tf
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

    s = _traced_step(spec, xla=False)
    step, batch = s.step, s.batch
    for _ in range(2):
        _sync(step(batch))
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        t0 = time.perf_counter()
        for _ in range(spec["steps"]):
            _sync(step(batch))
        wall = time.perf_counter() - t0
        tf.profiler.experimental.stop()
        files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        raw, ok = _pywrap_profiler_plugin.xspace_to_tools_data(
            files, "framework_op_stats", {}
        )
    if not ok:
        raise RuntimeError(f"profiler conversion failed: {raw[:200]!r}")
    table = json.loads(raw)[0]
    cols = [c["id"] for c in table["cols"]]
    by_type: dict[str, float] = {}
    for row in table["rows"]:
        r = dict(zip(cols, (c.get("v") if c else None for c in row["c"])))
        if r.get("type") in (None, "IDLE"):
            continue
        by_type[r["type"]] = by_type.get(r["type"], 0.0) + float(r["total_self_time"])
    total = sum(by_type.values())
    top = sorted(by_type.items(), key=lambda kv: -kv[1])
    return {
        "config": spec["config"],
        "xla": False,
        "steps": spec["steps"],
        "wall_s_per_step": wall / spec["steps"],
        "op_self_s_per_step": total / 1e6 / spec["steps"],
        "by_op_type": [
            {"type": k, "s_per_step": v / 1e6 / spec["steps"], "fraction": v / total}
            for k, v in top
        ],
    }


def _repeat(fn, args: dict, n: int):
    """Runs `fn(**args)` n times in sequence inside a traced function.

    Each iteration adds one element of the op's result to the loop's carry, so that
    grappler can neither prune the op nor overlap the iterations.
    """
    import tensorflow as tf

    def body(i, carry):
        out = tf.nest.flatten(fn(**args))[0]
        return i + 1, carry + tf.cast(tf.reshape(out, [-1])[0], tf.float32)

    return tf.while_loop(
        lambda i, _: i < n,
        body,
        [tf.constant(0), tf.constant(0.0)],
        parallel_iterations=1,
    )[1]


def task_kernels(spec: dict) -> dict:
    """The train step (no XLA), then each of its conv/matmul kernels run alone."""
    import tensorflow as tf

    s = _traced_step(spec, xla=False)
    step_s = _time_calls(s.step, (s.batch,), spec["warmup"], spec["steps"])["median_s"]
    rows = []
    for group in kernel_groups(s.graph):
        fn, args = kernel_fn(group)
        # Small ops repeat inside one call (a sequential loop, the op a control
        # dependency of each iteration), so that the call's own overhead (~1 ms) is
        # spread: ~2.5 GFLOP per call, 1-200 repeats.
        reps = min(200, max(1, math.ceil(2.5e9 / group["flops"])))
        # The inputs are arguments, not captured constants, which grappler would fold.
        call = tf.function(lambda a, fn=fn, n=reps: _repeat(fn, a, n))
        t = _time_calls(call, (args,), spec["warmup"], spec["steps"])["median_s"] / reps
        shapes = [i["shape"] for i in group["inputs"] if i["value"] is None]
        rows.append(
            {
                "type": group["type"],
                "kind": group["kind"],
                "shapes": shapes,
                "count": group["count"],
                "gflop": group["flops"] / 1e9,
                "seconds": t,
                "repeats": reps,
                "s_per_step": t * group["count"],
                "gflops_per_s": group["flops"] / t / 1e9,
            }
        )
    rows.sort(key=lambda r: -r["s_per_step"])
    by_kind: dict[str, dict] = {}
    for r in rows:
        k = by_kind.setdefault(r["kind"], {"s_per_step": 0.0, "gflop_per_step": 0.0})
        k["s_per_step"] += r["s_per_step"]
        k["gflop_per_step"] += r["gflop"] * r["count"]
    for k in by_kind.values():
        k["gflops_per_s"] = k["gflop_per_step"] / k["s_per_step"]
    kernel_s = sum(r["s_per_step"] for r in rows)
    gflop = sum(r["gflop"] * r["count"] for r in rows)
    return {
        "config": spec["config"],
        "precision": s.precision,
        "conv_input_grad": s.conv_input_grad,
        "xla": False,
        "step_s": step_s,
        "kernel_s_per_step": kernel_s,
        "kernel_fraction_of_step": kernel_s / step_s,
        "gflop_per_step": gflop,
        "kernel_gflops_per_s": gflop / kernel_s,
        "step_gflops_per_s": gflop / step_s,
        "ops": sum(r["count"] for r in rows),
        "by_kind": by_kind,
        "rows": rows,
    }


_TASKS = {
    "matmul": task_matmul,
    "train": task_train,
    "sample": task_sample,
    "pipeline": task_pipeline,
    "scaling": task_scaling,
    "profile": task_profile,
    "kernels": task_kernels,
}


def run_worker(spec: dict) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec.get("intra_op", 0))
    tf.config.threading.set_inter_op_parallelism_threads(spec.get("inter_op", 0))
    t0 = time.perf_counter()
    result = _TASKS[spec["task"]](spec)
    result["wall_s"] = time.perf_counter() - t0
    result["peak_rss_mib"] = peak_rss_mib()
    return result


# -- orchestration (parent side) -------------------------------------------------
PRECISIONS = {
    "float32": ["float32"],
    "bfloat16": ["bfloat16"],
    "both": ["float32", "bfloat16"],
}


def train_key(xla: bool, precision: str) -> str:
    """Results key of a train step: xla_on / xla_off, prefixed bf16_ for bfloat16."""
    key = "xla_on" if xla else "xla_off"
    return key if precision == "float32" else f"bf16_{key}"


def _spawn(spec: dict, timeout: int) -> dict:
    """Runs one measurement in a fresh Python process; returns its JSON or an error."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [
            sys.executable,
            "-m",
            "dvdgan_tf.benchmark",
            f"--worker={json.dumps(spec)}",
        ]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": _REPO}
        env["PYTHONPATH"] += os.pathsep + os.environ.get("PYTHONPATH", "")
        try:
            proc = subprocess.run(
                [*cmd, f"--worker_out={out}"],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=_REPO,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        if proc.returncode or not os.path.exists(out):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        with open(out) as f:
            return json.load(f)


def plan(
    specs,
    quick,
    xla,
    steps,
    warmup,
    scaling,
    profile,
    matmul_n,
    matmul_reps,
    threads=(0, 0),
    precision="float32",
    kernels=False,
    conv_input_grad="",
    graph_optimizations="",
):
    """The list of measurements: (key path in the results, worker spec)."""
    modes = {"both": [False, True], "on": [True], "off": [False]}[xla]
    if quick:
        modes = [False] if xla == "both" else modes
    precisions = PRECISIONS[precision]
    reps = dict(steps=steps, warmup=warmup)
    mm = {"task": "matmul", "n": matmul_n, "reps": matmul_reps}
    jobs = [(("matmul_peak",), mm)]
    if "bfloat16" in precisions:
        jobs.append((("matmul_peak_bf16",), {**mm, "dtype": "bfloat16"}))
    for s in specs:
        for p in precisions:
            for on in modes:
                key = ("configs", s, "train", train_key(on, p))
                first = on == modes[0] and p == precisions[0]
                analytic = first and (s.startswith(REFERENCE) or quick)
                train = {"task": "train", "config": s, "xla": on, "analytic": analytic}
                jobs.append((key, {**train, "precision": p, **reps}))
        sample = {"task": "sample", "config": s, **reps}
        jobs.append((("configs", s, "sampling"), sample))
        batches = 2 if quick else 10
        pipe = {"task": "pipeline", "config": s, "warmup": 1, "batches": batches}
        jobs.append((("configs", s, "pipeline"), pipe))
    if scaling and not quick:
        sizes = {"frames": [4, 8, 16], "resolutions": [16, 32, 64]}
        jobs.append(
            (("scaling",), {"task": "scaling", **sizes, "steps": 3, "warmup": 1})
        )
    if kernels and not quick:
        for s in specs:
            if s.endswith(":runlocal"):
                continue  # Smoke sizes: overhead-bound, nothing to learn per kernel.
            for p in precisions:
                spec = {"task": "kernels", "config": s, "precision": p, **reps}
                jobs.append((("configs", s, "kernels", p), spec))
    if profile and not quick:
        ref = next((s for s in specs if s.startswith(REFERENCE)), REFERENCE)
        jobs.append((("profile",), {"task": "profile", "config": ref, "steps": 3}))
    for _, spec in jobs:
        spec["intra_op"], spec["inter_op"] = threads
        if conv_input_grad:
            spec["conv_input_grad"] = conv_input_grad
        if graph_optimizations:
            spec["graph_optimizations"] = graph_optimizations
    return jobs


def _set(d: dict, key: tuple, value) -> None:
    for k in key[:-1]:
        d = d.setdefault(k, {})
    d[key[-1]] = value


def summarise(results: dict) -> None:
    """Adds the derived numbers: fraction of peak (of the matmul peak in the step's
    precision), the faster XLA mode per precision, the pipeline's headroom over the
    fastest step, the reference point (float32, as the issue defines it)."""
    peaks = {
        "float32": results.get("matmul_peak", {}).get("gflops"),
        "bfloat16": results.get("matmul_peak_bf16", {}).get("gflops"),
    }
    peak = peaks["float32"]
    for spec, r in results.get("configs", {}).items():
        for p, k in r.get("kernels", {}).items():
            if peaks.get(p) and "rows" in k:
                k["kernel_fraction_of_peak"] = k["kernel_gflops_per_s"] / peaks[p]
                for row in k["rows"]:
                    row["fraction_of_peak"] = row["gflops_per_s"] / peaks[p]
        train = {k: v for k, v in r.get("train", {}).items() if "error" not in v}
        for v in train.values():
            v.setdefault("precision", "float32")  # Results from before --precision.
            if peaks.get(v["precision"]):
                v["fraction_of_peak"] = v["gflops_per_s"] / peaks[v["precision"]]
        if train:
            fastest = min(train, key=lambda k: train[k]["step_s"])
            consumed = train[fastest]["clips_per_s"]
            for p in r.get("pipeline", {}).values():
                if isinstance(p, dict) and "clips_per_s" in p:
                    p["headroom"] = p["clips_per_s"] / consumed
            for precision in ("float32", "bfloat16"):
                same = [k for k, v in train.items() if v["precision"] == precision]
                if same:
                    suffix = "" if precision == "float32" else "_bf16"
                    best = min(same, key=lambda k: train[k]["step_s"])
                    r["faster_xla" + suffix] = best
            if spec.startswith(REFERENCE) and "faster_xla" in r:  # float32's best
                b = train[r["faster_xla"]]
                results["reference"] = {
                    "config": spec,
                    **describe(load(spec)),
                    "xla": b["xla"],
                    "seconds_per_iteration": b["step_s"],
                    "flops_per_iteration": b["flops"]["total"],
                    "gflops_per_s": b["gflops_per_s"],
                    "matmul_peak_gflops": peak,
                    "fraction_of_peak": b.get("fraction_of_peak"),
                    "peak_rss_mib": b["peak_rss_mib"],
                    "compile_s": b["compile_s"],
                }


def _fmt(v, spec=".3g") -> str:
    if v is None:
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def format_tables(results: dict) -> str:
    lines = []
    mm = results.get("matmul_peak", {})
    onednn = {True: "on", False: "off"}.get(mm.get("onednn"), "?")
    lines.append(
        f"fp32 matmul peak: {_fmt(mm.get('gflops'), '.1f')} GFLOP/s "
        f"({mm.get('n')}x{mm.get('n')}, best of {mm.get('reps')}: tf.matmul "
        f"{_fmt(mm.get('tf_gflops'), '.1f')}, numpy {_fmt(mm.get('numpy_gflops'), '.1f')}; "
        f"{mm.get('cpu_count')} CPUs, TF {mm.get('tf_version')}, oneDNN {onednn})"
    )
    bf = results.get("matmul_peak_bf16")
    if bf:
        lines.append(
            f"bf16 matmul peak: {_fmt(bf.get('gflops'), '.1f')} GFLOP/s (same matmul "
            "in bfloat16; the %peak of bf16 steps)"
        )
    head = (
        f"{'config':44} {'prec':4} {'XLA':3} {'compile s':>9} {'step s':>8} "
        f"{'GFLOP/st':>8} {'GFLOP/s':>8} {'%peak':>6} {'RSS MiB':>8}"
    )
    lines += ["", "Train step (median; one D step per d_steps + one G step)", head]
    for spec, r in results.get("configs", {}).items():
        for mode, v in r.get("train", {}).items():
            prec = "bf16" if mode.startswith("bf16_") else "fp32"
            xla = mode.rsplit("_", 1)[-1]
            if "error" in v:
                lines.append(f"{spec:44} {prec:4} {xla:3} ERROR {v['error'][:80]}")
                continue
            frac = v.get("fraction_of_peak")
            lines.append(
                f"{spec:44} {prec:4} {xla:3} {v['compile_s']:9.1f} {v['step_s']:8.4f} "
                f"{v['flops']['total'] / 1e9:8.3f} {v['gflops_per_s']:8.2f} "
                f"{_fmt(frac and 100 * frac, '6.1f'):>6} {v['peak_rss_mib']:8.0f}"
            )
    head = (
        f"{'config':44} {'G vid/s':>8} {'EMA u8/s':>8} {'RSS':>6} {'builtin':>8} "
        f"{'folder':>8} {'headroom':>8} {'RSS':>6}"
    )
    lines += ["", "Sampling (videos/s) and input pipeline (clips/s)", head]
    for spec, r in results.get("configs", {}).items():
        s, p = r.get("sampling", {}), r.get("pipeline", {})
        g = s.get("generator", {}).get("videos_per_s")
        e = s.get("ema_export_uint8", {}).get("videos_per_s")
        bi, fo = p.get("builtin", {}), p.get("folder", {})
        lines.append(
            f"{spec:44} {_fmt(g, '8.1f'):>8} {_fmt(e, '8.1f'):>8} "
            f"{_fmt(s.get('peak_rss_mib'), '6.0f'):>6} "
            f"{_fmt(bi.get('clips_per_s'), '8.0f'):>8} "
            f"{_fmt(fo.get('clips_per_s'), '8.0f'):>8} "
            f"{_fmt(bi.get('headroom'), '7.1f'):>7}x "
            f"{_fmt(p.get('peak_rss_mib'), '6.0f'):>6}"
        )
        for part in (s, p):
            if "error" in part:
                lines.append(f"  ERROR {part['error'][:120]}")
    sc = results.get("scaling")
    if sc and "rows" in sc:
        lines += ["", f"Scaling (ch {sc['ch']}, batch 4, k 4, no XLA; seconds fwd+bwd)"]
        lines.append(f"{'res':>4} {'T':>3} {'G':>8} {'D_S':>8} {'D_T':>8}")
        for row in sc["rows"]:
            lines.append(
                f"{row['resolution']:4d} {row['num_frames']:3d} {row['G_s']:8.4f} "
                f"{row['D_S_s']:8.4f} {row['D_T_s']:8.4f}"
            )
    pr = results.get("profile")
    if pr and "by_op_type" in pr:
        lines += [
            "",
            f"Where the time goes: {pr['config']} train step, no XLA, TF profiler "
            f"({pr['wall_s_per_step']:.3f} s/step wall)",
        ]
        for row in pr["by_op_type"][:12]:
            lines.append(
                f"  {row['type']:32} {row['s_per_step']:8.4f} s {100 * row['fraction']:5.1f}%"
            )
    for spec, r in results.get("configs", {}).items():
        for p, k in r.get("kernels", {}).items():
            lines += _kernel_lines(spec, p, k)
    ref = results.get("reference")
    if ref:
        lines += [
            "",
            f"REFERENCE ({ref['config']}: {ref['resolution']}x{ref['resolution']}, "
            f"T={ref['num_frames']}, k={ref['k']}, batch {ref['batch_size']}, width "
            f"{ref['g_ch']}, d_steps={ref['d_steps']}, XLA {ref['xla']}): "
            f"{ref['seconds_per_iteration']:.3f} s/iteration, "
            f"{ref['flops_per_iteration'] / 1e9:.1f} GFLOP/iteration, "
            f"{ref['gflops_per_s']:.1f} GFLOP/s = "
            f"{100 * (ref['fraction_of_peak'] or 0):.1f}% of the "
            f"{_fmt(ref['matmul_peak_gflops'], '.1f')} GFLOP/s matmul peak, "
            f"peak RSS {ref['peak_rss_mib']:.0f} MiB",
        ]
    for e in results.get("errors", []):
        lines.append(f"ERROR {e}")
    return "\n".join(lines)


def _kernel_lines(spec: str, precision: str, k: dict, top: int = 12) -> list[str]:
    """The `kernels` measurement of one config as text: totals, per kind, top ops."""
    if "error" in k:
        return ["", f"Kernels alone: {spec} ({precision}) ERROR {k['error'][:120]}"]
    lines = [
        "",
        f"Kernels alone: {spec} ({precision}, no XLA): train step {k['step_s']:.3f} s; "
        f"its {k['ops']} conv/matmul ops run one at a time take "
        f"{k['kernel_s_per_step']:.3f} s ({100 * k['kernel_fraction_of_step']:.0f}% "
        f"of the step) at {k['kernel_gflops_per_s']:.1f} GFLOP/s",
        "  "
        + " | ".join(
            f"{kind.replace('_', ' ')} {v['s_per_step']:.3f} s, "
            f"{v['gflops_per_s']:.1f} GFLOP/s"
            for kind, v in k["by_kind"].items()
        ),
        f"  {'op':24} {'input shapes':40} {'n':>3} {'ms/op':>8} {'GFLOP/s':>8} "
        f"{'%peak':>6} {'s/step':>7}",
    ]
    for row in k["rows"][:top]:
        shapes = ", ".join("x".join(map(str, sh)) for sh in row["shapes"])
        frac = row.get("fraction_of_peak")
        lines.append(
            f"  {row['type']:24} {shapes:40} {row['count']:3d} "
            f"{1e3 * row['seconds']:8.3f} {row['gflops_per_s']:8.1f} "
            f"{_fmt(frac and 100 * frac, '6.1f'):>6} {row['s_per_step']:7.3f}"
        )
    return lines


def run_benchmark(
    specs=None,
    quick: bool = False,
    xla: str = "both",
    steps: int = 10,
    warmup: int = 2,
    scaling: bool = True,
    profile: bool = True,
    matmul_n: int = 4096,
    matmul_reps: int = 5,
    timeout: int = 1800,
    threads: tuple[int, int] = (0, 0),
    precision: str = "float32",
    kernels: bool = False,
    conv_input_grad: str = "",
    graph_optimizations: str = "",
    log=print,
) -> dict:
    """Runs every measurement in its own subprocess; returns the results dict."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {sorted(PRECISIONS)}; received {precision!r}"
        )
    if quick:
        steps, warmup = min(steps, 2), min(warmup, 1)
        matmul_n, matmul_reps = min(matmul_n, 1024), min(matmul_reps, 3)
    specs = list(specs or default_specs(quick))
    for s in specs:
        load(s)  # Fail before any subprocess on a bad spec.
    results = {
        "meta": {
            "quick": quick,
            "xla": xla,
            "precision": precision,
            "steps": steps,
            "warmup": warmup,
            "specs": specs,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg(),
            "intra_op_threads": threads[0],
            "inter_op_threads": threads[1],
            "conv_input_grad": conv_input_grad or "each config's",
            "graph_optimizations": graph_optimizations or "each config's",
        },
        "configs": {s: {"shape": describe(load(s))} for s in specs},
        "errors": [],
    }
    jobs = plan(
        specs,
        quick,
        xla,
        steps,
        warmup,
        scaling,
        profile,
        matmul_n,
        matmul_reps,
        threads,
        precision,
        kernels,
        conv_input_grad,
        graph_optimizations,
    )
    t0 = time.perf_counter()
    for i, (key, spec) in enumerate(jobs):
        log(f"[{i + 1}/{len(jobs)}] {' '.join(str(k) for k in key)}")
        r = _spawn(spec, timeout)
        if "error" in r:
            results["errors"].append(f"{'/'.join(map(str, key))}: {r['error']}")
        _set(results, key, r)
    results["meta"]["total_s"] = time.perf_counter() - t0
    results["meta"]["load_average_end"] = os.getloadavg()
    summarise(results)
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WORKER.value:
        result = run_worker(json.loads(_WORKER.value))
        with open(_WORKER_OUT.value, "w") as f:
            json.dump(result, f)
        return
    results = run_benchmark(
        _CONFIGS.value,
        quick=_QUICK.value,
        xla=_XLA.value,
        steps=_STEPS.value,
        warmup=_WARMUP.value,
        scaling=_SCALING.value,
        profile=_PROFILE.value,
        matmul_n=_MATMUL_N.value,
        matmul_reps=_MATMUL_REPS.value,
        timeout=_TIMEOUT.value,
        threads=(_INTRA.value, _INTER.value),
        precision=_PRECISION.value,
        kernels=_KERNELS.value,
        conv_input_grad=_CONV_INPUT_GRAD.value,
        graph_optimizations=_GRAPPLER.value,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    print(format_tables(results))
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(results, f, indent=1)
    if results["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
