"""Layer numerics against independent numpy references (numpy SVD, a numpy GRU loop,
hand-computed BN)."""

import numpy as np
import pytest
import tensorflow as tf

from dvdgan_tf import config_lib, layers


def np_conv2d_same(x, w, b, pad_mode="constant"):
    """x [N, H, W, Ci], w [k, k, Ci, Co] -> [N, H, W, Co], stride 1, SAME, cross-corr.

    pad_mode: numpy's ("constant": zeros; "reflect": mirrored, edge not repeated)."""
    k = w.shape[0]
    p = k // 2
    pads = ((0, 0), (p, k - 1 - p), (p, k - 1 - p), (0, 0))
    xp = np.pad(x, pads, mode=pad_mode)
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + wd], w[i, j])
    return out + b


def _run_power_iterations(layer, n=60):
    for _ in range(n):
        layer.normalized_kernel(training=True)


@pytest.mark.parametrize(
    "make, in_shape",
    [
        (lambda: layers.SNConv2D(6, 3), (1, 5, 5, 4)),
        (lambda: layers.SNConv3D(5, 3), (1, 3, 5, 5, 2)),
        (lambda: layers.SNDense(7), (1, 9)),
        (lambda: layers.SNEmbedding(10, 6), (1,)),
    ],
)
def test_spectral_norm_matches_numpy_svd(make, in_shape):
    layer = make()
    layer.build(in_shape)
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=layer.kernel.shape).astype("float32")  # not orthogonal
    layer.kernel.assign(kernel)
    _run_power_iterations(layer)
    w = kernel.reshape(-1, kernel.shape[-1])  # [N, C_out]: the matrix SN normalises
    top = np.linalg.svd(w, compute_uv=False)[0]
    np.testing.assert_allclose(float(layer.sigma.numpy()), top, rtol=1e-3)
    normalized = layer.normalized_kernel(training=False).numpy()
    top_normalized = np.linalg.svd(normalized.reshape(w.shape), compute_uv=False)[0]
    np.testing.assert_allclose(top_normalized, 1.0, rtol=1e-3)
    # The stored kernel is never rewritten (unlike keras.layers.SpectralNormalization).
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


def test_spectral_norm_inference_does_not_update_u():
    layer = layers.SNDense(3)
    layer.build((None, 4))
    u0 = layer.sn_u.numpy().copy()
    layer(tf.ones([2, 4]), training=False)
    np.testing.assert_array_equal(layer.sn_u.numpy(), u0)
    layer(tf.ones([2, 4]), training=True)
    assert not np.allclose(layer.sn_u.numpy(), u0)


def test_spectral_norm_gradient_stops_at_u():
    layer = layers.SNDense(3)
    layer.build((None, 4))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(tf.ones([2, 4]), training=True))
    grads = tape.gradient(y, layer.trainable_variables)
    assert all(g is not None for g in grads)
    assert len(layer.trainable_variables) == 2  # kernel, bias: u and sigma are state


@pytest.mark.parametrize(
    "padding, pad_mode", [("zeros", "constant"), ("reflect", "reflect")]
)
def test_sn_conv_matches_numpy_conv(padding, pad_mode):
    layer = layers.SNConv2D(3, 3, padding=padding)
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 4)).astype("float32")
    y = layer(x, training=False).numpy()
    w = layer.normalized_kernel(training=False).numpy()
    expected = np_conv2d_same(x, w, layer.bias.numpy(), pad_mode)
    np.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("make", [layers.SNConv2D, layers.SNConv3D])
def test_reflect_padding_keeps_a_constant_input_constant(make):
    """What the FP frame encoder needs it for: a flat frame has no border edges."""
    shape = (1, 5, 6, 2) if make is layers.SNConv2D else (1, 4, 5, 6, 2)
    x = np.full(shape, -0.6, np.float32)  # a flat dark-grey background
    reflect = make(4, 3, padding="reflect")
    y = reflect(x).numpy()
    np.testing.assert_allclose(y, np.broadcast_to(y.flat[:4], y.shape), atol=1e-5)
    zeros = make(4, 3)
    zeros.build(shape)
    zeros.kernel.assign(reflect.kernel)
    y0 = zeros(x).numpy()  # the same conv with zero padding: borders differ
    assert np.abs(y0 - y).max() > 0.05


def np_gru(x, h0, wg, bg, wc, bc):
    """The paper's ConvGRU equations, one frame at a time."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    k = h0.shape[-1]
    h, outs = h0, []
    for t in range(x.shape[1]):
        xt = x[:, t]
        g = sig(np_conv2d_same(np.concatenate([h, xt], -1), wg, bg))
        r, u = g[..., :k], g[..., k:]
        c = np.maximum(np_conv2d_same(np.concatenate([xt, r * h], -1), wc, bc), 0)
        h = u * h + (1 - u) * c
        outs.append(h)
    return np.stack(outs, 1)


@pytest.mark.parametrize("with_h0", [False, True])
def test_conv_gru_matches_numpy_loop(with_h0):
    rng = np.random.default_rng(2)
    b, t, hh, ww, cx, k = 2, 4, 4, 5, 3, 6
    x = rng.normal(size=(b, t, hh, ww, cx)).astype("float32")
    h0 = rng.normal(size=(b, hh, ww, k)).astype("float32") if with_h0 else None
    gru = layers.ConvGRU(k)
    gru.build(x.shape)
    gru.gates.bias.assign(rng.normal(size=(2 * k,)).astype("float32"))
    gru.candidate.bias.assign(rng.normal(size=(k,)).astype("float32"))
    out = gru(x, h0, training=False).numpy()
    ref = np_gru(
        x.astype("float64"),
        np.zeros((b, hh, ww, k)) if h0 is None else h0.astype("float64"),
        gru.gates.normalized_kernel().numpy(),
        gru.gates.bias.numpy(),
        gru.candidate.normalized_kernel().numpy(),
        gru.candidate.bias.numpy(),
    )
    assert out.shape == (b, t, hh, ww, k)
    np.testing.assert_allclose(out, ref, atol=2e-4)
    assert not np.allclose(out[:, 0], out[:, -1])  # the state evolves


def _autodiff_gru(gx, cx, wg_h, wc_h, h0):
    """The recurrence as a plain loop of TF ops, differentiated by autodiff."""
    k, h, outs = h0.shape[-1], h0, []
    for i in range(gx.shape[1]):
        g = tf.sigmoid(gx[:, i] + tf.nn.conv2d(h, wg_h, 1, "SAME"))
        r, u = g[..., :k], g[..., k:]
        c = tf.nn.relu(cx[:, i] + tf.nn.conv2d(r * h, wc_h, 1, "SAME"))
        h = u * h + (1 - u) * c
        outs.append(h)
    return tf.stack(outs, 1)


@pytest.fixture(params=["forward", "native"])
def conv_input_grad(request):
    """Runs a test under each runtime.conv_input_grad, restoring the default after."""
    layers.set_conv_input_grad(request.param)
    yield request.param
    layers.set_conv_input_grad("forward")


def np_conv_same_and_grads(x, w, cot):
    """Stride-1 'SAME' conv of rank 2 or 3 and, for loss = sum(y * cot), its
    gradients w.r.t. x and w, by explicit loops over the kernel offsets."""
    ks = w.shape[:-2]
    pads = [(0, 0)] + [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ks] + [(0, 0)]
    xp = np.pad(x, pads)
    y = np.zeros(x.shape[:-1] + (w.shape[-1],))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for off in np.ndindex(*ks):
        window = (slice(None),) + tuple(
            slice(o, o + n) for o, n in zip(off, x.shape[1:-1])
        )
        y += xp[window] @ w[off]  # [N, ..., Ci] @ [Ci, Co]
        dxp[window] += cot @ w[off].T  # [N, ..., Co] @ [Co, Ci]
        lead = list(range(x.ndim - 1))  # N and the spatial axes
        dw[off] = np.tensordot(xp[window], cot, axes=(lead, lead))  # [Ci, Co]
    inner = (slice(None),) + tuple(
        slice(lo, lo + n) for (lo, _), n in zip(pads[1:-1], x.shape[1:-1])
    )
    return y, dxp[inner], dw


@pytest.mark.parametrize(
    "x_shape, w_shape",
    [
        ((2, 7, 5, 3), (3, 3, 3, 4)),
        ((2, 7, 5, 3), (1, 1, 3, 4)),
        ((2, 3, 5, 4, 2), (3, 3, 3, 2, 5)),
        ((1, 4, 5, 2), (2, 2, 2, 3)),  # even kernel: always TF's own op
    ],
)
def test_conv_same_and_its_gradients_match_numpy(conv_input_grad, x_shape, w_shape):
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    cot = rng.normal(size=x_shape[:-1] + w_shape[-1:])
    y_ref, dx_ref, dw_ref = np_conv_same_and_grads(x, w, cot)

    def loss_and_grads(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = layers.conv_same(x, w)
            loss = tf.reduce_sum(y * cot)
        return (y, *tape.gradient(loss, [x, w]))

    x, w = tf.constant(x), tf.constant(w)
    runs = [tf.function(loss_and_grads)(x, w)]
    if conv_input_grad == "forward" or len(x_shape) == 4:
        # TF 2.21's eager gradient of Conv3D fails (its mock op lacks data_format);
        # traced it works, and the model always trains traced.
        runs.append(loss_and_grads(x, w))
    for y, dx, dw in runs:
        np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-10)
    # Which op computes the input gradient: a forward conv of the flipped kernel, or
    # TF's backprop-input op (also for an even kernel, whose 'SAME' pads unevenly).
    graph = tf.function(loss_and_grads).get_concrete_function(x, w).graph
    types = {op.type for op in graph.get_operations()}
    backprop = {"Conv2DBackpropInput", "Conv3DBackpropInputV2"} & types
    odd = all(k % 2 for k in w_shape[:-2])
    assert bool(backprop) == (conv_input_grad == "native" or not odd)


def test_conv_input_grad_setting_is_checked(tiny_config):
    with pytest.raises(ValueError, match=r"received runtime.conv_input_grad='fast'"):
        layers.set_conv_input_grad("fast")
    c = tiny_config
    assert c.runtime.conv_input_grad == "forward"
    c.runtime.conv_input_grad = "Native"
    with pytest.raises(ValueError, match="one of forward, native; received .*'Native'"):
        config_lib.validate(c)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gru_recurrence_hand_written_gradient_matches_autodiff(dtype, conv_input_grad):
    """`gru_recurrence`'s backward pass (BPTT with folded filter gradients) against
    TF's autodiff of the same loop, for all five inputs, under a random cotangent."""
    rng = np.random.default_rng(11)
    b, t, hh, ww, k = 2, 5, 4, 3, 3
    args = [
        rng.normal(size=(b, t, hh, ww, 2 * k)),  # gx
        rng.normal(size=(b, t, hh, ww, k)),  # cx
        0.5 * rng.normal(size=(3, 3, k, 2 * k)),  # wg_h
        0.5 * rng.normal(size=(3, 3, k, k)),  # wc_h
        rng.normal(size=(b, hh, ww, k)),  # h0
    ]
    args = [tf.constant(a, dtype) for a in args]
    cot = tf.constant(rng.normal(size=(b, t, hh, ww, k)), dtype)
    results = []
    for fn in (layers.gru_recurrence, _autodiff_gru):
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = fn(*args)
            loss = tf.reduce_sum(out * cot)
        results.append((out, tape.gradient(loss, args)))
    (out, grads), (ref_out, ref_grads) = results
    tol = 1e-10 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for name, g, ref in zip(["gx", "cx", "wg_h", "wc_h", "h0"], grads, ref_grads):
        assert np.abs(ref.numpy()).max() > 1e-3, name  # the check has something to see
        np.testing.assert_allclose(g, ref, rtol=20 * tol, atol=20 * tol, err_msg=name)


def test_conditional_bn_gradient_matches_hand_derived():
    """The fused BatchNorm's backward pass through the batch statistics, against the
    closed form dx = (dxn - mean(dxn) - xn * mean(dxn * xn)) / sqrt(var + eps)."""
    rng = np.random.default_rng(5)
    b, t, h, w, c, d = 2, 3, 4, 3, 4, 6
    x = tf.constant(rng.normal(1.0, 2.0, size=(b * t, h, w, c)), tf.float32)
    cond = tf.constant(rng.normal(size=(b, d)), tf.float32)
    cot = rng.normal(size=(b * t, h, w, c))
    bn = layers.ConditionalBatchNorm(epsilon=1e-4)
    bn.build(x.shape, cond.shape)
    for dense in (bn.gain, bn.bias):  # converge u so the SN kernel is the same below
        _run_power_iterations(dense, 200)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(bn(x, cond, training=True) * cot)
    dx = tape.gradient(loss, x).numpy()
    gamma = 1.0 + cond.numpy() @ bn.gain.normalized_kernel().numpy()
    gamma = gamma + bn.gain.bias.numpy()
    xv = x.numpy().astype("float64")
    mean, var = xv.mean((0, 1, 2)), xv.var((0, 1, 2))
    xn = (xv - mean) / np.sqrt(var + 1e-4)
    dxn = cot * np.repeat(gamma, t, 0)[:, None, None]  # d loss / d xn
    ref = (dxn - dxn.mean((0, 1, 2)) - xn * (dxn * xn).mean((0, 1, 2))) / np.sqrt(
        var + 1e-4
    )
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(dx, ref, atol=1e-4)


_SYNC_BN_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf
from dvdgan_tf import layers
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
rng = np.random.default_rng(4)
x = rng.normal(1.5, 2.0, size=(8, 4, 4, 3)).astype("float32")  # B*T = 4 x 2
# Channel 2: mean 50, std 0.5. A one-pass variance, E[x^2] - E[x]^2, loses ~1e-3 of its
# ~0.25 to float32 rounding of the ~2500 it subtracts; the two-pass one does not.
x[..., 2] = 50.0 + 0.25 * x[..., 2]
cond = rng.normal(size=(4, 5)).astype("float32")
single = layers.ConditionalBatchNorm(momentum=0.5)
single.build(x.shape, cond.shape)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    synced = layers.ConditionalBatchNorm(momentum=0.5)
    synced.build((4, 4, 4, 3), (2, 5))
for v, w in zip(synced.weights, single.weights):
    v.assign(w.numpy())
y_single = single(x, cond, training=True).numpy()  # fused: statistics over all 8

def fn():
    i = tf.distribute.get_replica_context().replica_id_in_sync_group
    xs, cs = tf.constant(x), tf.constant(cond)
    return synced(xs[4 * i : 4 * i + 4], cs[2 * i : 2 * i + 2], training=True)

y_synced = np.concatenate(
    [r.numpy() for r in strategy.experimental_local_results(strategy.run(fn))]
)
json.dump({
    "y": float(np.abs(y_synced - y_single).max()),
    "y_scale": float(np.abs(y_single).max()),
    "mean": float(np.abs(synced.moving_mean.numpy() - single.moving_mean.numpy()).max()),
    "var": float(np.abs(synced.moving_variance.numpy() - single.moving_variance.numpy()).max()),
    "mean_moved": float(np.abs(single.moving_mean.numpy()).max()),
}, sys.stdout)
"""


def test_conditional_bn_fused_path_matches_synchronised_path():
    """One replica (the fused op) and two synchronised replicas (moments summed across
    them, the maths by hand) normalise the same batch alike and keep the same moving
    statistics. In a fresh process: the two logical CPUs must exist before TF starts."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _SYNC_BN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = json.loads(proc.stdout.strip().splitlines()[-1])
    assert diff["y_scale"] > 1.0 and diff["mean_moved"] > 0.3  # something to compare
    assert diff["y"] < 1e-4 and diff["mean"] < 1e-5 and diff["var"] < 1e-4, diff


def test_conditional_bn_matches_hand_computed():
    rng = np.random.default_rng(3)
    b, t, h, w, c, d = 3, 2, 4, 4, 5, 7
    x = rng.normal(2.0, 3.0, size=(b * t, h, w, c)).astype("float32")
    cond = rng.normal(size=(b, d)).astype("float32")
    bn = layers.ConditionalBatchNorm(momentum=0.9, epsilon=1e-4)
    bn.build(x.shape, cond.shape)
    bn.gain.bias.assign(rng.normal(size=(c,)).astype("float32"))
    bn.bias.bias.assign(rng.normal(size=(c,)).astype("float32"))
    for dense in (bn.gain, bn.bias):  # converge u so the SN kernel is the same below
        _run_power_iterations(dense, 200)
    y = bn(x, cond, training=True).numpy()

    gamma = 1.0 + cond @ bn.gain.normalized_kernel().numpy() + bn.gain.bias.numpy()
    beta = cond @ bn.bias.normalized_kernel().numpy() + bn.bias.bias.numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # over B*T, H, W
    xn = (x - mean) / np.sqrt(var + 1e-4)
    gamma_t, beta_t = (
        np.repeat(gamma, t, 0),
        np.repeat(beta, t, 0),
    )  # per example, over T
    ref = xn * gamma_t[:, None, None] + beta_t[:, None, None]
    np.testing.assert_allclose(y, ref, atol=1e-4)
    # Moving statistics after one update, then inference uses them.
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var, rtol=1e-4)
    y_inf = bn(x, cond, training=False).numpy()
    xn_inf = (x - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-4)
    np.testing.assert_allclose(
        y_inf, xn_inf * gamma_t[:, None, None] + beta_t[:, None, None], atol=1e-3
    )
    # Different (z, y) give different gamma, beta.
    assert not np.allclose(gamma[0], gamma[1]) and not np.allclose(beta[0], beta[1])


def test_unconditional_bn():
    x = np.random.default_rng(4).normal(size=(4, 3, 3, 2)).astype("float32")
    bn = layers.ConditionalBatchNorm(conditional=False, epsilon=1e-4)
    y = bn(x, training=True).numpy()
    ref = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-4)
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.parametrize(
    "layer",
    [
        layers.SNConv2D(4, 3, name="a"),
        layers.SNConv3D(4, 1, use_bias=False),
        layers.SNDense(5),
        layers.SNEmbedding(3, 4),
        layers.ConditionalBatchNorm(conditional=False, momentum=0.5),
        layers.ConvGRU(3, 3),
        layers.SNConv2D(4, 3, padding="reflect"),
    ],
)
def test_get_config_round_trip(layer):
    cfg = layer.get_config()
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: layers.SNDense(0), "units=0"),
        (lambda: layers.SNConv2D(-1), "filters=-1"),
        (lambda: layers.SNConv2D(4, padding="same"), "padding='same'"),
        (lambda: layers.SNEmbedding(0, 4), "num_classes=0"),
        (lambda: layers.ConditionalBatchNorm(momentum=1.5), "momentum=1.5"),
        (lambda: layers.ConvGRU(0), "units=0"),
    ],
)
def test_bad_arguments_quote_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()
