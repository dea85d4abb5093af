"""Hinge losses of DVD-GAN (paper v2, section 3.3; Lim & Ye 2017, as BigGAN).

For each discriminator D in {D_S, D_T}, with scores on real videos x and fakes G(z):
  L_D = mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))
and the total D loss is L_{D_S} + L_{D_T}. The generator loss is
  L_G = -(mean(D_S(G(z))) + w_T mean(D_T(G(z)))),
with w_T = 1 in the paper (`train.g_dt_weight` and `train.g_dt_weight_schedule`: a
departure for DVD-GAN-FP runs where G trades D_T's motion against D_S's crisp frames,
see BENCHMARKS.md, DVD-GAN-FP).
The functions return every term worth logging; means are over this replica's batch.
"""

from __future__ import annotations

import tensorflow as tf


def d_hinge_terms(
    real_scores: tf.Tensor, fake_scores: tf.Tensor
) -> dict[str, tf.Tensor]:
    """real_scores, fake_scores: [B] -> {'real': mean relu(1-D(x)), 'fake': ...}."""
    real = tf.reduce_mean(tf.nn.relu(1.0 - tf.cast(real_scores, tf.float32)))
    fake = tf.reduce_mean(tf.nn.relu(1.0 + tf.cast(fake_scores, tf.float32)))
    return {"real": real, "fake": fake}


def discriminator_loss(ds_real, ds_fake, dt_real, dt_fake) -> dict[str, tf.Tensor]:
    """Summed hinge loss of D_S and D_T with its four terms: {'d_loss', 'ds_real', ...}."""
    s = d_hinge_terms(ds_real, ds_fake)
    t = d_hinge_terms(dt_real, dt_fake)
    return {
        "d_loss": s["real"] + s["fake"] + t["real"] + t["fake"],
        "ds_real": s["real"],
        "ds_fake": s["fake"],
        "dt_real": t["real"],
        "dt_fake": t["fake"],
    }


def generator_loss(ds_fake, dt_fake, dt_weight: float = 1.0) -> dict[str, tf.Tensor]:
    """-(mean D_S(G(z)) + dt_weight mean D_T(G(z))): {'g_loss', 'g_ds', 'g_dt'}.

    'g_ds' and 'g_dt' are the unweighted terms (what each discriminator says).
    """
    g_ds = -tf.reduce_mean(tf.cast(ds_fake, tf.float32))
    g_dt = -tf.reduce_mean(tf.cast(dt_fake, tf.float32))
    return {"g_loss": g_ds + dt_weight * g_dt, "g_ds": g_ds, "g_dt": g_dt}
