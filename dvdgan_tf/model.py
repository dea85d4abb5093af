"""DVDGAN: G, D_S, D_T and the EMA generator in one `keras.Model` (paper v2, 3.3).

`train_step` (one replica's view) runs, in order:
  1. sample z ~ N(0, I) and the fake videos' class ids;
  2. `d_steps` discriminator updates (paper: 2), each on fresh real clips (the input
     pipeline yields d_steps x B clips per step; the step splits them), with the
     summed hinge loss of D_S and D_T;
  3. one generator update on -(mean D_S(G(z)) + w_T mean D_T(G(z))), w_T =
     `g_dt_weight` (paper: 1);
  4. the EMA of G's weights (paper: decay 0.9999 from step 20k), kept in
     `ema_generator`, which sampling and export use; its BatchNorm statistics
     come from its own forward pass, or are G's (`ema_statistics`, see
     `_update_ema`);
  5. metrics: every loss term, gradient norms, mean spectral norms.

Fake class ids: by default the real batch's labels (`fake_labels="real"`), so G is
trained on the data's class distribution and D compares real and fake of the same
classes in each batch; `"uniform"` samples them uniformly instead.

DVD-GAN-FP (model.conditioning_frames = C > 0, paper v2 section 4.2): real clips
are C + T frames long; G sees the first C frames of a real clip (`frames=`) and
generates the T that follow, and the fake clip is those C real frames followed by
G's T, so both discriminators judge C + T frames, real and fake alike, and with
them the continuity from the conditioning frames; same hinge loss. Fakes take the
conditioning clip's label (fake_labels must be "real").

Under a tf.distribute strategy losses are scaled by 1/num_replicas_in_sync before
the gradient (the optimizers sum gradients across replicas); logged values are
unscaled. BatchNorm statistics are synchronised across replicas (layers.py).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import config_lib, layers, losses, schedules
from dvdgan_tf.discriminators import SpatialDiscriminator, TemporalDiscriminator
from dvdgan_tf.generator import Generator

_METRICS = (
    "d_loss",
    "ds_real",
    "ds_fake",
    "dt_real",
    "dt_fake",
    "g_loss",
    "g_ds",
    "g_dt",
    "g_dt_weight",  # D_T's weight in this step's G loss (train.g_dt_weight_schedule)
    "g_lr",  # the learning rates of this step (lr_schedules, train.lr_decay_steps)
    "d_lr",
    "d_grad_norm",
    "g_grad_norm",
    "g_sigma",
    "d_sigma",
)


def _sigma_mean(model: keras.Model) -> tf.Tensor:
    sigmas = [
        tf.convert_to_tensor(w.value)
        for w in model.weights
        if w.path.endswith("/sigma")
    ]
    return tf.add_n(sigmas) / len(sigmas)


class DVDGAN(keras.Model):
    """The full GAN. `model_config` is a config's `model` section.

    Calling the model samples from the EMA generator: (z [B, z_dim], labels [B]) ->
    video [B, T, H, W, 3] in [-1, 1].
    """

    def __init__(self, model_config, **kwargs):
        super().__init__(**kwargs)
        self.model_config = model_config
        m = model_config
        self.generator = Generator.from_model_config(m, "generator")
        self.ema_generator = Generator.from_model_config(m, "ema_generator")
        self.ema_generator.trainable = False
        self.spatial_discriminator = SpatialDiscriminator.from_model_config(m)
        self.temporal_discriminator = TemporalDiscriminator.from_model_config(m)
        self.z_dim = m.z_dim
        self.num_classes = m.num_classes
        self.conditioning_frames = m.conditioning_frames  # C; 0 = plain generation
        self.built = True
        self._trackers = {name: keras.metrics.Mean(name=name) for name in _METRICS}

    @property
    def discriminator_variables(self):
        return (
            self.spatial_discriminator.trainable_variables
            + self.temporal_discriminator.trainable_variables
        )

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        d_steps: int = 2,
        ema_decay: float = 0.9999,
        ema_start: int = 20_000,
        fake_labels: str = "real",
        ema_statistics: str = "forward",
        ema_rampup: float = 0.0,
        g_dt_weight: float = 1.0,
        g_dt_weight_schedule=(),
        lr_schedules=None,
        **kwargs,
    ):
        """kwargs go to keras.Model.compile (jit_compile, steps_per_execution).

        ema_statistics: where the EMA generator's BatchNorm statistics come from,
        "forward" (its own forward pass each step) or "copy" (G's); `_update_ema`.
        ema_rampup: caps the average's horizon 1/(1-d) at this fraction of the G
            steps done (0 = off; `schedules.EMADecay`).
        g_dt_weight: D_T's weight in G's loss (`losses.generator_loss`; paper 1).
        g_dt_weight_schedule: ((step, w), ...): from G step `step` on, the weight
            is `w` (the last entry reached); g_dt_weight before the first.
        lr_schedules: None (the optimizers' own rates) or (g, d): callables of the
            train step (G steps done) giving G's and D's rate, assigned to the
            optimizers' learning-rate variables before each step's updates, so the
            config's rates, not a checkpoint's, drive a resumed run
            (schedules.py).
        """
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1; received d_steps={d_steps!r}")
        ema_schedule = schedules.EMADecay(ema_decay, ema_start, ema_rampup)
        if fake_labels not in ("real", "uniform"):
            raise ValueError(
                f"fake_labels must be 'real' or 'uniform'; received {fake_labels!r}"
            )
        if self.conditioning_frames and fake_labels != "real":
            raise ValueError(
                "DVD-GAN-FP fakes continue real clips and take their labels: "
                f"fake_labels must be 'real'; received {fake_labels!r}"
            )
        if ema_statistics not in config_lib.EMA_STATISTICS:
            raise ValueError(
                f"ema_statistics must be one of {config_lib.EMA_STATISTICS}; received "
                f"{ema_statistics!r}"
            )
        g_dt_weight = config_lib.check_weight(g_dt_weight, "g_dt_weight")
        schedule = config_lib.check_weight_schedule(
            g_dt_weight_schedule, "g_dt_weight_schedule"
        )
        super().compile(**kwargs)
        # Keras 3.15 averages a step's logs across workers with
        # strategy.reduce("MEAN", v, axis=0), which needs a batch axis on scalars.
        self._logs_need_axis = isinstance(
            self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy
        )
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.d_steps = d_steps
        self.ema_schedule = ema_schedule  # decay, start, rampup: the one copy
        self.fake_labels = fake_labels
        self.ema_statistics = ema_statistics
        self.g_dt_weight = g_dt_weight
        self.g_dt_weight_schedule = schedule
        self.lr_schedules = tuple(lr_schedules) if lr_schedules else None
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator_variables)
        self.copy_generator_to_ema()
        self.seed_generator = keras.random.SeedGenerator(0, name="gan_seed")

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skipped: every weight and both optimizers are built in __init__/compile.

        Keras's version first averages a data batch across replicas with
        strategy.reduce, which fails under MultiWorkerMirroredStrategy with
        integer labels (Keras 3.15 / TF 2.21: "Attempt to convert a value
        (PerReplica...)"), and builds nothing this model needs.
        """
        return

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, z, labels, training=False, frames=None):
        """frames: DVD-GAN-FP's conditioning frames [B, C, H, W, 3] (see Generator)."""
        return self.ema_generator(z, labels, training=False, frames=frames)

    def copy_generator_to_ema(self):
        for ema, w in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(w.value)

    # -- the train step -------------------------------------------------------
    def _scale(self, loss, optimizer):
        """One replica's loss -> the loss to differentiate (replica- and loss-scaled)."""
        n = tf.distribute.get_strategy().num_replicas_in_sync
        return optimizer.scale_loss(loss / n if n > 1 else loss)

    def sample_noise(self, batch_size) -> tf.Tensor:
        """z ~ N(0, I): float32 [B, z_dim] (this replica's share of the batch)."""
        return keras.random.normal((batch_size, self.z_dim), seed=self.seed_generator)

    def conditioning(self, real):
        """DVD-GAN-FP: real clips [B, C+T, H, W, 3] -> their first C frames; else None."""
        c = self.conditioning_frames
        return real[:, :c] if c else None  # [B, C, H, W, 3]

    def _fake(self, z, labels, cond):
        """G's clips (training mode): [B, T, H, W, 3], or [B, C+T, ...] after `cond`."""
        video = self.generator(z, labels, training=True, frames=cond)  # [B, T, H, W, 3]
        if cond is None:
            return video
        return tf.concat([cond, video], axis=1)  # [B, C+T, H, W, 3]: real C, then G's

    def _d_step(self, real, labels):
        z = self.sample_noise(tf.shape(real)[0])
        fake_y = self._fake_labels(labels)
        fake = self._fake(z, fake_y, self.conditioning(real))  # G's BN stats update
        fake = tf.stop_gradient(fake)
        with tf.GradientTape() as tape:
            ds, dt = self.spatial_discriminator, self.temporal_discriminator
            terms = losses.discriminator_loss(
                ds(real, labels, training=True),
                ds(fake, fake_y, training=True),
                dt(real, labels, training=True),
                dt(fake, fake_y, training=True),
            )
            scaled = self._scale(terms["d_loss"], self.d_optimizer)
        variables = self.discriminator_variables
        grads = tape.gradient(scaled, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        terms["d_grad_norm"] = tf.linalg.global_norm(grads)
        return terms

    def _fake_labels(self, labels):
        if self.fake_labels == "real":
            return labels
        return keras.random.randint(
            tf.shape(labels),
            0,
            self.num_classes,
            dtype="int32",
            seed=self.seed_generator,
        )

    def _g_dt_weight_now(self):
        """D_T's weight in this G step's loss (`g_dt_weight_schedule`)."""
        done = self.g_optimizer.iterations  # G steps done before this one
        w = tf.constant(self.g_dt_weight)
        for step, value in self.g_dt_weight_schedule:
            w = tf.where(done >= step, value, w)
        return w

    def _g_step(self, labels, z, cond=None):
        fake_y = self._fake_labels(labels)
        dt_weight = self._g_dt_weight_now()
        with tf.GradientTape() as tape:
            fake = self._fake(z, fake_y, cond)
            terms = losses.generator_loss(
                self.spatial_discriminator(fake, fake_y, training=True),
                self.temporal_discriminator(fake, fake_y, training=True),
                dt_weight,
            )
            scaled = self._scale(terms["g_loss"], self.g_optimizer)
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.g_optimizer.apply_gradients(zip(grads, variables))
        terms["g_grad_norm"] = tf.linalg.global_norm(grads)
        terms["g_dt_weight"] = dt_weight
        return terms, fake_y

    def _update_ema(self, z, labels, frames=None):
        """ema = d * ema + (1 - d) * w, d from `ema_schedule` (0 before ema_start).

        Only trainable weights are averaged. The non-trainable state follows
        `ema_statistics`:
        - "forward": the EMA generator's BatchNorm moving statistics and
          spectral-norm vectors are its own: one training-mode forward of the EMA
          generator per step (on the G step's z and labels) updates them from the
          averaged weights. Copying G's statistics instead pairs averaged weights
          with another network's activation statistics, which measurably spoils
          EMA samples early in a run (BENCHMARKS.md); BigGAN recomputes "standing
          statistics" for the same reason. Cost: one G forward per step (~8% of
          the default CPU config's step).
        - "copy": G's BatchNorm moving statistics are copied, and each
          spectral-norm layer runs one power iteration on its own averaged kernel
          (a few small matmuls, no forward pass). Meant for runs with
          eval.standing_stats > 0, which recompute the statistics from the
          averaged weights wherever the EMA generator is scored, sampled from a
          workdir or exported (`dvdgan_tf.standing_stats`); only the in-training
          sample GIFs use the copied ones. G's training is the same either way.
        """
        decay = self.ema_schedule(self.g_optimizer.iterations)  # G steps done
        pairs = zip(self.ema_generator.weights, self.generator.weights)
        pairs = [(e, w) for e, w in pairs if w.trainable]
        ema_update([e for e, _ in pairs], [w for _, w in pairs], decay)
        if self.ema_statistics == "forward":
            self.ema_generator(z, labels, training=True, frames=frames)  # statistics
            return
        bn = layers.ConditionalBatchNorm
        for ema, w in zip(
            layers.sublayers(self.ema_generator, bn),
            layers.sublayers(self.generator, bn),
        ):
            ema.moving_mean.assign(w.moving_mean.value)
            ema.moving_variance.assign(w.moving_variance.value)
        for sn in layers.sublayers(self.ema_generator, layers.SpectralNorm):
            sn.normalized_kernel(training=True)  # one power iteration: u, sigma

    def train_step(self, data):
        # 1. Data: d_steps x B real clips, split into one chunk per D step.
        videos, labels = data  # [d_steps*B, C+T, H, W, 3], [d_steps*B]
        labels = tf.cast(labels, tf.int32)
        n = videos.shape[0]
        if n is not None and n % self.d_steps:
            raise ValueError(
                f"the batch of {n} clips does not split into d_steps={self.d_steps} "
                "D steps; the input pipeline must yield d_steps x batch_size clips"
            )
        real_chunks = tf.split(
            videos, self.d_steps, axis=0
        )  # d_steps x [B, C+T, H, W, 3]
        label_chunks = tf.split(labels, self.d_steps, axis=0)  # d_steps x [B]
        if self.lr_schedules:  # this step's rates (train steps done = G's counter)
            done = self.g_optimizer.iterations
            for opt, schedule in zip(
                (self.g_optimizer, self.d_optimizer), self.lr_schedules
            ):
                opt.learning_rate.assign(
                    tf.cast(schedule(done), opt.learning_rate.dtype)
                )
        # 2. Discriminator updates, each on fresh real data and fresh fakes.
        for real, y in zip(real_chunks, label_chunks):
            d_terms = self._d_step(real, y)
        # 3. One generator update (labels, and FP's conditioning, of the last chunk).
        z = self.sample_noise(tf.shape(label_chunks[-1])[0])  # [B, z_dim]
        cond = self.conditioning(real_chunks[-1])  # [B, C, H, W, 3] or None
        g_terms, fake_y = self._g_step(label_chunks[-1], z, cond)
        # 4. EMA of G's weights, then of its BN statistics.
        self._update_ema(z, fake_y, cond)
        # 5. Metrics (unscaled, this replica's last D step and the G step).
        logs = {**d_terms, **g_terms}
        logs["g_sigma"] = _sigma_mean(self.generator)
        logs["g_lr"] = tf.cast(self.g_optimizer.learning_rate, tf.float32)
        logs["d_lr"] = tf.cast(self.d_optimizer.learning_rate, tf.float32)
        logs["d_sigma"] = (
            _sigma_mean(self.spatial_discriminator)
            + _sigma_mean(self.temporal_discriminator)
        ) / 2.0
        for name, tracker in self._trackers.items():
            tracker.update_state(logs[name])
        out = {name: tracker.result() for name, tracker in self._trackers.items()}
        if self._logs_need_axis:
            out = {
                name: tf.reshape(v, [1]) for name, v in out.items()
            }  # [1] per worker
        return out

    # -- construction from a config ------------------------------------------
    @classmethod
    def from_config_dict(cls, config, jit_compile: bool = False) -> DVDGAN:
        """Builds and compiles the GAN from a full config (model + train sections)."""
        t = config.train
        gan = cls(config.model, name="dvdgan")
        gan.compile(
            g_optimizer=make_optimizer(
                t.g_lr, t, config.runtime.mixed_precision, "g_adam"
            ),
            d_optimizer=make_optimizer(
                t.d_lr, t, config.runtime.mixed_precision, "d_adam"
            ),
            d_steps=t.d_steps,
            ema_decay=t.ema_decay,
            ema_start=t.ema_start,
            fake_labels=t.fake_labels,
            ema_statistics=t.get("ema_statistics", "forward"),
            ema_rampup=t.get("ema_rampup", 0.0),
            g_dt_weight=t.get("g_dt_weight", 1.0),
            g_dt_weight_schedule=t.get("g_dt_weight_schedule", ()),
            lr_schedules=[
                schedules.LinearTailDecay(
                    lr,
                    total_steps=t.num_steps,
                    decay_steps=t.get("lr_decay_steps", 0),
                    final_fraction=t.get("lr_final_fraction", 0.0),
                )
                for lr in (t.g_lr, t.d_lr)
            ],
            jit_compile=jit_compile,
            steps_per_execution=t.steps_per_execution,
        )
        return gan


def ema_update(averages, weights, decay):
    """average = decay * average + (1 - decay) * weight, for each pair in order.

    The EMA generator's update (paper Section 4; decay from `schedules.EMADecay`);
    decay 0 copies the weights. Keras or tf.Variables (`benchmarks/ema_sweep.py`
    keeps its extra averages in the latter).
    """

    def read(v):  # a Keras variable's value, not its autocast view
        return tf.convert_to_tensor(v.value if isinstance(v, keras.Variable) else v)

    for a, w in zip(averages, weights):
        a.assign(decay * read(a) + (1.0 - decay) * read(w))


def make_optimizer(lr: float, t, precision: str = "float32", name: str = "adam"):
    """Adam with the config's betas (paper: G 1e-4, D 5e-4; BigGAN betas 0, 0.999)."""
    opt = keras.optimizers.Adam(
        learning_rate=lr,
        beta_1=t.beta1,
        beta_2=t.beta2,
        epsilon=t.adam_epsilon,
        name=name,
    )
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
    return opt
