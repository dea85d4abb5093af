"""One train step on one device vs MirroredStrategy over two logical CPUs, same global
batch, same z: the weights after the step must agree.

Plain SGD (no momentum) makes each trainable weight's change -lr * (its gradient summed
over replicas), so a wrong loss scale or a missed all-reduce shows up in full; Adam's
first step, lr * g / (|g| + eps), would hide both. Prints 'max_rel_diff=<x>' (largest
per-tensor max|dg| / max(max|g|, FLOOR * the largest |g| of all tensors), dg counted
beyond the float32 storage resolution of w - lr * g) with the tensor it came from,
'max_state_diff=<x>' (BN moving statistics, SN vectors, EMA: absolute) and
'changed=<x>' (the largest |g|). '-v' lists every tensor."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu,
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

import keras  # noqa: E402

from dvdgan_tf import config_lib, runtime  # noqa: E402
from dvdgan_tf.model import DVDGAN  # noqa: E402

GLOBAL_B = 4
LR = 1e-3  # small: the G step sees D after its step, keep that D close to the start
# Float noise in a gradient entry scales with the terms summed into it, not with the
# entry: where terms of size ~|g|max cancel (pre-BN biases, whose true gradient is 0;
# any tensor that happens to get a small gradient) the two runs differ by 1e-6 to 3e-5
# absolute (seen over ~30 initialisations), which is ~1% of a gradient of 2e-3. So each
# tensor's difference is taken relative to its own largest gradient, but never to less
# than FLOOR of the largest gradient in the model.
FLOOR = 0.02


class FixedNoiseGAN(DVDGAN):
    """z from a fixed global draw, each replica taking its own rows."""

    calls = {}  # per replica: each replica's step is traced separately

    def sample_noise(self, batch_size):
        ctx = tf.distribute.get_replica_context()
        rid = ctx.replica_id_in_sync_group if ctx is not None else 0
        if not isinstance(rid, int):
            rid = int(tf.get_static_value(rid))
        n = FixedNoiseGAN.calls[rid] = FixedNoiseGAN.calls.get(rid, 0) + 1
        z = tf.random.stateless_normal([GLOBAL_B, self.z_dim], seed=[n, 0])
        return z[rid * batch_size : (rid + 1) * batch_size]


def make(config, strategy):
    with strategy.scope():
        gan = FixedNoiseGAN(config.model, name="dvdgan")
        gan.compile(
            g_optimizer=keras.optimizers.SGD(LR),
            d_optimizer=keras.optimizers.SGD(LR),
            d_steps=1,
            ema_start=0,
            jit_compile=False,
        )
    return gan


def main():
    # Seeded, as the in-process tests are (conftest): the same initialisation each run,
    # so the comparison cannot pass or fail by the draw.
    keras.utils.set_random_seed(0)
    config = config_lib.load_config(sys.argv[1])
    with config.unlocked():
        config.model.k = config.model.num_frames  # D_S on all frames: no sampling noise
    runtime.set_graph_optimizations(config.runtime.graph_optimizations)  # as training
    m = config.model
    rng = np.random.default_rng(0)
    videos = rng.uniform(-1, 1, (GLOBAL_B, m.num_frames, m.resolution, m.resolution, 3))
    labels = rng.integers(0, m.num_classes, GLOBAL_B).astype("int32")
    ds = tf.data.Dataset.from_tensors((videos.astype("float32"), labels)).repeat()

    single = make(config, tf.distribute.get_strategy())
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = make(config, mirrored_strategy)
    for a, b in zip(single.weights, mirrored.weights):
        b.assign(a.value)
    mirrored.copy_generator_to_ema()

    models = (
        "generator",
        "spatial_discriminator",
        "temporal_discriminator",
        "ema_generator",
    )
    before = {
        w.path: np.asarray(w.value).copy()
        for name in models
        for w in getattr(single, name).weights
    }
    FixedNoiseGAN.calls = {}
    single.fit(ds, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    FixedNoiseGAN.calls = {}
    mirrored.fit(ds, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    print("replicas", mirrored_strategy.num_replicas_in_sync)
    grads, state_diffs = [], [0.0]  # grads: (path, max|ga - gb| beyond ulp, max|ga|)
    for name in models:
        model_a, model_b = getattr(single, name), getattr(mirrored, name)
        trainable = {w.path for w in model_a.trainable_weights}
        for a, b in zip(model_a.weights, model_b.weights):
            assert a.path == b.path, (a.path, b.path)  # both runs' start is before[a]
            wa, wb = np.asarray(a.value), np.asarray(b.value)
            if a.path in trainable:
                ga = (before[a.path] - wa) / LR  # the gradient the single run applied
                gb = (before[a.path] - wb) / LR  # the mirrored run's, same start
                # w - lr * g is stored in float32: each recovered gradient entry is
                # off by up to half an ulp of its weight / lr, so two runs with equal
                # gradients can differ by one ulp / lr (1e-4 to 3e-5 here). The ulp of
                # the largest of the three values: where wb alone crosses a power of
                # two, its ulp is twice the others' (a missed 6e-5 would be 1% of a
                # gradient of 5e-3). Only the excess over that resolution is a
                # difference between the gradients.
                largest = np.maximum(np.abs(before[a.path]), np.abs(wa))
                ulp = np.spacing(np.maximum(largest, np.abs(wb))) / LR
                d = np.maximum(np.abs(ga - gb) - ulp, 0.0).max()
                grads.append((a.path, d, np.abs(ga).max()))
            else:
                d = np.abs(wa - wb).max()
                state_diffs.append(d)
                if "-v" in sys.argv and d > 1e-6:
                    print(a.path, "state", d)
    changed = max(scale for _, _, scale in grads)
    floor = FLOOR * changed
    rel = [(d / max(scale, floor), path, d, scale) for path, d, scale in grads]
    if "-v" in sys.argv:
        for r, path, d, scale in sorted(rel):
            print(f"{path} rel={r:.3g} diff={d:.3g} scale={scale:.3g}")
    worst = max(rel)
    print(
        f"max_rel_diff={worst[0]:.3g} in {worst[1]} (diff {worst[2]:.3g}, "
        f"largest gradient {worst[3]:.3g}, floor {floor:.3g})"
    )
    print(f"max_state_diff={max(state_diffs):.3g}")
    print(f"changed={changed:.3g}")


if __name__ == "__main__":
    main()
