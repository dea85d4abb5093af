"""One train step on one device vs MirroredStrategy over two logical CPUs, same global
batch, same z: the weights after the step must agree. Prints 'max_abs_diff=<x>'."""

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

from dvdgan_tf import config_lib  # noqa: E402
from dvdgan_tf.model import DVDGAN, make_optimizer  # noqa: E402

GLOBAL_B = 4


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
        t = config.train
        gan = FixedNoiseGAN(config.model, name="dvdgan")
        gan.compile(
            g_optimizer=make_optimizer(t.g_lr, t),
            d_optimizer=make_optimizer(t.d_lr, t),
            d_steps=1,
            ema_start=0,
            jit_compile=False,
        )
    return gan


def main():
    config = config_lib.load_config(sys.argv[1])
    with config.unlocked():
        config.model.k = config.model.num_frames  # D_S on all frames: no sampling noise
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

    before = [np.asarray(w.value).copy() for w in single.generator.trainable_weights]
    FixedNoiseGAN.calls = {}
    single.fit(ds, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    FixedNoiseGAN.calls = {}
    mirrored.fit(ds, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    print("replicas", mirrored_strategy.num_replicas_in_sync)
    diffs, bias_diffs = [], []
    for model_a, model_b in (
        (single.generator, mirrored.generator),
        (single.spatial_discriminator, mirrored.spatial_discriminator),
        (single.temporal_discriminator, mirrored.temporal_discriminator),
    ):
        for a, b in zip(model_a.weights, model_b.weights):
            d = np.abs(np.asarray(a.value) - np.asarray(b.value)).max()
            # Conv biases right before a BN get ~0 gradients that Adam rescales to
            # +-lr: their summation-order noise is amplified, so they get their own bound.
            (bias_diffs if a.path.endswith("/bias") else diffs).append(d)
            if "-v" in sys.argv and d > 1e-6:
                print(a.path, d)
    changed = max(
        np.abs(np.asarray(w.value) - b).max()
        for w, b in zip(single.generator.trainable_weights, before)
    )
    print(f"max_abs_diff={max(diffs):.3g}")
    print(f"max_bias_diff={max(bias_diffs):.3g}")
    print(f"changed={changed:.3g}")


if __name__ == "__main__":
    main()
