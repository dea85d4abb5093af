"""Schedules over the G step: G's and D's learning rates, the EMA's decay.

The paper (Section 4, Appendix A) trains with constant learning rates (G 1e-4,
D 5e-4) for ~300k steps. `train.lr_decay_steps` lets both rates fall linearly to
`train.lr_final_fraction` of their value over the run's last steps, the common
remedy for a GAN's late drift, and a departure from the paper that is off
(constant rates) by default. On the built-in dataset's CPU runs a late decay did
not lower the Fréchet distance (BENCHMARKS.md, "Why the Fréchet distance stalls").

A Keras optimizer built with a float keeps its rate in a variable that
tf.train.Checkpoint saves and restores, so a resumed run would train on at the
checkpoint's rate whatever `--config.train.g_lr` says. DVDGAN (model.py) keeps that
variable (checkpoints keep their layout) and assigns it from these schedules, built
from the config, before every step's updates.

`EMADecay` is the EMA generator's decay per G step (a constant after ema_start, or
ramped up with the run), applied by `model.ema_update`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from dvdgan_tf import config_lib


class LinearTailDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`base` until `total_steps - decay_steps`, then linear to `base * final_fraction`.

    Args:
      base: the learning rate before the decay.
      total_steps: train steps of the whole run (train.num_steps); the rate reaches
        `base * final_fraction` there and stays there after.
      decay_steps: length of the decay at the end of the run; 0 = constant `base`.
      final_fraction: the rate at `total_steps` as a fraction of `base`, in [0, 1].
    """

    def __init__(
        self,
        base: float,
        total_steps: int,
        decay_steps: int = 0,
        final_fraction: float = 0.0,
    ):
        if not 0 <= decay_steps <= total_steps:
            raise ValueError(
                f"decay_steps must be in [0, total_steps={total_steps}]; received "
                f"decay_steps={decay_steps!r}"
            )
        if not 0.0 <= final_fraction <= 1.0:
            raise ValueError(
                f"final_fraction must be in [0, 1]; received {final_fraction!r}"
            )
        self.base = float(base)
        self.total_steps = int(total_steps)
        self.decay_steps = int(decay_steps)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        """The rate for the train step after `step` steps done (a scalar tensor)."""
        base = tf.constant(self.base, tf.float32)
        if self.decay_steps == 0:
            return base
        step = tf.cast(step, tf.float32)
        start = float(self.total_steps - self.decay_steps)
        progress = tf.clip_by_value((step - start) / self.decay_steps, 0.0, 1.0)
        return base * (1.0 - (1.0 - self.final_fraction) * progress)

    def get_config(self) -> dict:
        return {
            "base": self.base,
            "total_steps": self.total_steps,
            "decay_steps": self.decay_steps,
            "final_fraction": self.final_fraction,
        }


class EMADecay:
    """The decay of the EMA generator's average at a G step (model.DVDGAN).

    Paper, Section 4: "we use an exponential moving average of G's weights" for
    evaluation, with no decay given (BigGAN's is 0.9999, from step 20k). The
    average is a copy of G up to `start` G steps, then ema = d * ema + (1 - d) * w
    (`model.ema_update`).

    `rampup` > 0 shortens the average early in a run: its horizon 1/(1-d) is at
    most `rampup` times the G steps done, i.e. d = min(decay, 1 - 1/(rampup*step))
    (0 while rampup*step <= 1), so it follows a generator that still improves fast
    and lengthens to `decay` later. Karras et al. 2020 (StyleGAN2-ADA) ramp their
    EMA the same way (half-life <= 5% of the images seen). 0 = a constant decay.

    Args:
      decay: the decay once ramped up, in [0, 1).
      start: G steps before which the average is a copy of G.
      rampup: the horizon's cap as a fraction of G steps done; >= 0, 0 = off.
    """

    def __init__(self, decay: float, start: int = 0, rampup: float = 0.0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(
                f"ema_decay must be in [0, 1); received ema_decay={decay!r}"
            )
        self.decay = float(decay)
        self.start = int(start)
        self.rampup = config_lib.check_weight(rampup, "ema_rampup")  # >= 0, 0 = off

    def __call__(self, step):
        """The decay for the average after `step` G steps done (a scalar tensor)."""
        step = tf.cast(step, tf.float32)
        decay = tf.constant(self.decay, tf.float32)
        if self.rampup > 0:
            horizon = tf.maximum(self.rampup * step, 1.0)  # steps averaged over
            decay = tf.minimum(decay, 1.0 - 1.0 / horizon)
        return tf.where(step > float(self.start), decay, 0.0)

    def get_config(self) -> dict:
        return {"decay": self.decay, "start": self.start, "rampup": self.rampup}
