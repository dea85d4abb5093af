"""Devices and numerics: distribution strategies, the XLA switch, mixed precision,
TensorFlow's graph optimizer (Grappler).

Where the XLA boundary sits, per strategy (measured with TF 2.21 / Keras 3.15):
- default / one_device: the whole train step is one `jit_compile=True` function
  (Keras `compile(jit_compile=...)`).
- tpu: everything on a TPU is XLA; Keras compiles the replicated step.
- mirrored / multi_worker: no XLA. A whole Keras step compiled with XLA under
  MirroredStrategy fails ("Trying to access resource ... located in device CPU:1
  from device CPU:0"), and a nested `tf.function(jit_compile=True)` cannot hold the
  synchronised BatchNorm or the optimizer apply (`merge_call` inside a nested
  function) — and every G layer has a synchronised BN. So these strategies run the
  step as a plain `tf.function`, which is what the tests check.

`jit_compile="auto"` picks per device from the benchmark: on for GPU and TPU, off on
a CPU-only machine (BENCHMARKS.md: the default CPU config's step is ~2x slower with
XLA on the 2-core CI CPU, and compiling costs 30-90 s), off for the mirrored
strategies.
"""

from __future__ import annotations

import json
import os
import re

import keras
import tensorflow as tf
from absl import logging

from dvdgan_tf.config_lib import check_precision

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def onednn_enabled() -> bool:
    """Whether TensorFlow runs oneDNN's CPU kernels in this process.

    `import dvdgan_tf` turns them on (TF_ENABLE_ONEDNN_OPTS=1) on x86-64 unless the
    variable is set or TensorFlow was imported first; TensorFlow itself does so only
    on CPUs with AVX-512 VNNI / BF16 or AMX. False where TF cannot say (private API).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - moved in a future TF
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def get_strategy(name: str = "default", tpu: str = "") -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy called `name` (one of STRATEGIES)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi_worker' needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}); it is not set'
            )
        json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    raise ValueError(
        f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}"
    )


def _tpu_strategy(address: str) -> tf.distribute.TPUStrategy:
    """Connects to the TPU at `address` ('' = local TPU VM / Colab) and initialises it."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=address or None
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as e:
        raise RuntimeError(
            f"could not connect to a TPU at --tpu={address!r}: {e}. On a Cloud TPU VM "
            "or a Colab TPU runtime leave --tpu empty; otherwise pass the TPU name or "
            "grpc://IP:8470 address."
        ) from e
    return tf.distribute.TPUStrategy(resolver)


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "single"


def resolve_jit_compile(setting, strategy: tf.distribute.Strategy) -> bool:
    """Maps runtime.jit_compile ('auto' | 'true' | 'false' | bool) to a bool."""
    value = str(setting).lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(
            f"runtime.jit_compile must be 'auto', 'true' or 'false'; received {setting!r}"
        )
    kind = strategy_kind(strategy)
    if kind in ("mirrored", "multi_worker"):
        if value == "true" and strategy.num_replicas_in_sync > 1:
            logging.warning(
                "runtime.jit_compile=true is not supported with the %s strategy (see "
                "dvdgan_tf/runtime.py); running the step without XLA.",
                kind,
            )
        return False if strategy.num_replicas_in_sync > 1 else value != "false"
    if kind == "tpu":
        return True
    if value == "auto":
        return bool(tf.config.list_logical_devices("GPU"))
    return value == "true"


def cpu_bf16_hardware(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """Which bfloat16 hardware the CPU has, by the flags of Linux's /proc/cpuinfo:
    "amx_bf16" (AMX tiles, Intel Sapphire Rapids and later), else "avx512_bf16"
    (AVX-512 bfloat16 dot products, e.g. AMD Zen 4), else None (also where the file
    is unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    for flag in ("amx_bf16", "avx512_bf16"):
        if re.search(rf"^flags\s*:.*\b{flag}\b", text, re.MULTILINE):
            return flag
    return None


def resolve_precision(setting: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """Maps runtime.mixed_precision to a policy name; 'auto' picks per device.

    'auto': bfloat16 (Keras mixed_bfloat16: float32 variables, bfloat16 convolutions)
    on a CPU-only machine whose CPU multiplies bfloat16 in hardware, where the default
    CPU config's train step is faster than float32 (BENCHMARKS.md: 1.65x with
    AMX-BF16, 1.42x with AVX512_BF16 alone); float32 everywhere else (GPU and TPU:
    not measured; CPUs without either: bfloat16 is emulated there).
    """
    check_precision(setting)
    if setting != "auto":
        return setting
    gpus = tf.config.list_logical_devices("GPU")
    tpus = tf.config.list_logical_devices("TPU")
    if not gpus and not tpus and cpu_bf16_hardware(cpuinfo) is not None:
        return "bfloat16"
    return "float32"


def set_precision(policy: str) -> str:
    """Sets Keras's global dtype policy: float32 | bfloat16 | mixed_float16 |
    mixed_bfloat16, or auto (`resolve_precision`, which also rejects a bad value).

    Returns the resolved setting (never "auto"), for logging."""
    names = {
        "float32": "float32",
        "bfloat16": "mixed_bfloat16",
        "mixed_bfloat16": "mixed_bfloat16",
        "mixed_float16": "mixed_float16",
    }
    resolved = resolve_precision(policy)
    keras.mixed_precision.set_global_policy(names[resolved])
    return resolved


def set_graph_optimizations(on: bool) -> bool:
    """Turns TensorFlow's graph optimizer (Grappler) on or off for this process.

    Applies to every tf.function graph first run from then on (Keras's train step,
    the samplers, the evaluation's functions), XLA-compiled ones too (the runlocal
    XLA step started ~8 s sooner without it: BENCHMARKS.md, "Grappler on or off").
    `runtime.graph_optimizations` in a config; runlocal turns it off
    (config_lib.runlocal). Returns `on`, for logging.
    """
    if not isinstance(on, bool):
        raise ValueError(f"graph optimizations must be True or False; received {on!r}")
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not on})
    return on


def graph_optimizations() -> bool:
    """Whether Grappler runs on this process's tf.function graphs."""
    options = tf.config.optimizer.get_experimental_options()
    return not options.get("disable_meta_optimizer", False)
