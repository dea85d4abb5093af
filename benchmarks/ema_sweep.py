"""Several EMA decays on one training run: which meets the issue-8 targets first.

The default CPU config averages G with decay 0.999 from step 500 (BENCHMARKS.md,
"What limits the 30-minute target": the decay was never varied). An average over
~1/(1-d) steps trails a generator that is still improving, and smooths one that
hovers; which wins at this run length is an empirical question. Separate runs per
decay would differ in their trajectories as much as in their averages, so this
script trains the config once, exactly as `python -m dvdgan_tf.train` does, and keeps
one extra average of G's trainable weights per decay in --decays, updated after
every G step by the model's own rule (a copy up to train.ema_start, then
ema = d * ema + (1 - d) * w; decay 0 is the raw generator). At every evaluation
from --score_from on, each extra average is loaded into the EMA generator and scored
like the model's own (standing statistics, the same samples), and the model's EMA
generator is put back exactly as it was. Training is unchanged by all this.

Outputs, besides the run's usual ones: WORKDIR/eval_ema/d<decay>/eval/<step>.json for
each extra decay and for the config's own (copied from WORKDIR/eval; named
d<decay>_r<rampup> if train.ema_rampup > 0: a ramped average), each with
`run_seconds` = the run's clock minus the seconds the extra scoring took before it,
i.e. the clock a run with only that one average would have had. Each
WORKDIR/eval_ema/<name> is a workdir for `python -m dvdgan_tf.report`.

  python benchmarks/ema_sweep.py --config=configs/synthetic_actions_cpu.py \\
      --workdir=workdirs/amx_ema_s0 --config.train.seed=0 --decays=0,0.995,0.9995

The extra averages are not checkpointed: run it fresh and in one go (it refuses a
workdir that has checkpoints).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time

import tensorflow as tf
from absl import app, flags, logging
from ml_collections import config_flags

from dvdgan_tf import (
    checkpoints,
    config_lib,
    evaluation,
    layers,
    schedules,
    training,
)
from dvdgan_tf import model as model_lib

FLAGS = flags.FLAGS


def _define_flags():
    """Defined only when run as a program (the tests import this module)."""
    config_flags.DEFINE_config_file(
        "config", "configs/synthetic_actions_cpu.py", "Config file.", lock_config=True
    )
    flags.DEFINE_string("workdir", None, "A fresh workdir.", required=True)
    flags.DEFINE_list(
        "decays", ["0", "0.995", "0.9995"], "Extra EMA decays (0: the raw generator)."
    )
    flags.DEFINE_integer(
        "score_from", 3000, "First step at which the extra averages are scored."
    )


POWER_ITERATIONS = 5  # spectral-norm vectors re-converged on each loaded average


def _track_name(decay: float, rampup: float = 0.0) -> str:
    """d<decay>, or d<decay>_r<rampup> for a ramped average (schedules.EMADecay)."""
    return f"d{decay:g}" + (f"_r{rampup:g}" if rampup else "")


def _track_dir(workdir: str, name: str) -> str:
    return os.path.join(workdir, "eval_ema", name)


class SweepCallback(evaluation.EvaluationCallback):
    """EvaluationCallback that also keeps and scores extra averages of G.

    `decays`: one extra average per decay in [0, 1); `score_from`: the first step
    whose evaluation scores them. The other arguments are EvaluationCallback's.
    """

    def __init__(self, *args, decays=(0.0,), score_from: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.decays = tuple(float(d) for d in decays)
        bad = [d for d in self.decays if not 0.0 <= d < 1.0]
        if bad or not self.decays:
            raise ValueError(
                f"decays must be one or more values in [0, 1); received {decays!r}"
            )
        self.score_from = score_from
        if self.clock is None:  # each track's minutes are this clock less extra scoring
            raise ValueError(
                "SweepCallback needs clock=<the run's training seconds>, as "
                "training.train passes it; received clock=None"
            )

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        gan = self.model
        ema = gan.ema_schedule
        self.own = ema.decay, ema.rampup
        own = _track_name(*self.own)
        if own in {_track_name(d) for d in self.decays}:
            raise ValueError(
                f"decays={self.decays!r} repeats the model's own average ({own}, "
                "train.ema_decay / train.ema_rampup), which is scored anyway"
            )
        pairs = zip(gan.ema_generator.weights, gan.generator.weights)
        pairs = [(e, w) for e, w in pairs if w.trainable]
        self.sources = [w for _, w in pairs]  # G's trainable weights
        self.targets = [e for e, _ in pairs]  # the EMA generator's, same order
        self.tracks = {
            d: [
                tf.Variable(tf.convert_to_tensor(w.value), trainable=False)
                for w in self.sources
            ]
            for d in self.decays
        }
        self.schedules = {d: schedules.EMADecay(d, ema.start) for d in self.decays}
        self.extra_seconds = 0.0
        self._update = tf.function(self._update_tracks)

    def _update_tracks(self, step):
        for d, track in self.tracks.items():  # the model's rule, a constant decay
            model_lib.ema_update(track, self.sources, self.schedules[d](step))

    def on_train_batch_end(self, batch, logs=None):
        self._update(tf.constant(float(self._step())))
        super().on_train_batch_end(batch, logs)

    def _write(
        self, decay: float, step: int, results: dict, now: float, rampup: float = 0.0
    ):
        workdir = _track_dir(self.workdir, _track_name(decay, rampup))
        if not os.path.exists(os.path.join(workdir, "config.json")):
            os.makedirs(workdir, exist_ok=True)
            shutil.copy(checkpoints.config_path(self.workdir), workdir)
        info = {
            "run_seconds": now,
            "ema_decay": decay,
            "ema_rampup": rampup,
            "extra_seconds_before": self.extra_seconds,
        }
        evaluation.write_results(workdir, step, results, info)

    def evaluate(self, step: int) -> dict:
        results = super().evaluate(step)
        # The clock after this step's own evaluation, less the extra scoring so far:
        # a run scoring one average would have stood there (all tracks share it).
        now = self.clock() - self.extra_seconds
        self._write(self.own[0], step, results, now, rampup=self.own[1])
        if step < self.score_from:
            return results
        start = time.time()
        ema = self.model.ema_generator
        kept = [tf.identity(v) for v in ema.weights]  # BN and SN state included
        for d, track in self.tracks.items():
            try:
                for e, v in zip(self.targets, track):
                    e.assign(v)
                for _ in range(POWER_ITERATIONS):
                    for sn in layers.sublayers(ema, layers.SpectralNorm):
                        sn.normalized_kernel(training=True)
                extra = self._score_ema()
            finally:
                for v, value in zip(ema.weights, kept):
                    v.assign(value)
            self._write(d, step, extra, now)
            logging.info(
                "step %d, decay %g: %s",
                step,
                d,
                json.dumps({k: round(float(v), 4) for k, v in extra.items()}),
            )
        self.extra_seconds += time.time() - start
        return results


def main(argv):
    del argv
    config = FLAGS.config
    config_lib.validate(config)
    workdir = FLAGS.workdir
    if tf.train.latest_checkpoint(checkpoints.checkpoint_dir(workdir)):
        raise ValueError(
            f"--workdir={workdir!r} has checkpoints; the extra averages are not "
            "checkpointed, so this script needs a fresh workdir"
        )
    # What training.train builds its evaluation callback from.
    evaluation.EvaluationCallback = functools.partial(
        SweepCallback, decays=FLAGS.decays, score_from=FLAGS.score_from
    )
    training.train(config, workdir)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
