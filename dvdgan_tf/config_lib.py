"""Shared pieces of the ml_collections configs in `configs/`.

Every config file in `configs/` calls `base_config()` and overrides what differs
(resolution, frames, classes, data). Sections: `model`, `data`, `train`, `eval`,
`runtime`. `runlocal()` shrinks any config so that it builds and trains in seconds
on a CPU; `validate()` checks values and quotes the bad one.

Channel tables (`G_ARCH`, `D_ARCH`) follow the BigGAN reference code
(ajbrock/BigGAN-PyTorch, `G_arch` / `D_arch`), the natural source where DVD-GAN is
silent: widths are `ch * multiplier`, one entry per block group. In DVD-GAN each G
entry becomes a ConvGRU followed by two residual blocks (paper v2, section 3.1).
"""

from __future__ import annotations

import ml_collections

# runtime.mixed_precision's values; "auto" is resolved per device by
# runtime.resolve_precision.
PRECISIONS = ("auto", "float32", "bfloat16", "mixed_float16", "mixed_bfloat16")


def check_precision(value: str) -> None:
    """Raises ValueError quoting `value` unless it is one of PRECISIONS."""
    if value not in PRECISIONS:
        raise ValueError(
            f"runtime.mixed_precision must be one of {', '.join(PRECISIONS)}; "
            f"received {value!r}"
        )


# runtime.conv_input_grad's values (layers.set_conv_input_grad).
CONV_INPUT_GRADS = ("forward", "native")


def check_conv_input_grad(value: str) -> str:
    """Returns `value`; raises ValueError quoting it unless it is in CONV_INPUT_GRADS."""
    if value not in CONV_INPUT_GRADS:
        raise ValueError(
            f"runtime.conv_input_grad must be one of {', '.join(CONV_INPUT_GRADS)}; "
            f"received runtime.conv_input_grad={value!r}"
        )
    return value


Z_DIM = 120  # Paper: z ~ N(0, I), 120-d.
EMBED_DIM = 120  # Paper: learned linear class embedding, 120-d.

# G: (input multiplier, output multiplier) per group; group i doubles H and W,
# starting from 4x4. Source: BigGAN-PyTorch G_arch.
G_ARCH = {
    32: ((4, 4), (4, 4), (4, 4)),
    64: ((16, 16), (16, 8), (8, 4), (4, 2)),
    128: ((16, 16), (16, 8), (8, 4), (4, 2), (2, 1)),
    256: ((16, 16), (16, 8), (8, 8), (8, 4), (4, 2), (2, 1)),
}

# D: output multiplier per block; every block but the last halves H and W.
# Source: BigGAN-PyTorch D_arch.
D_ARCH = {
    16: (4, 4, 4),
    32: (4, 4, 4, 4),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
}

# train.ema_statistics: where the EMA generator's BatchNorm statistics come from
# during training (dvdgan_tf/model.py, DVDGAN._update_ema).
EMA_STATISTICS = ("forward", "copy")
# G's output paths, model.output_skip: "none" (the paper) or "last_frame" (DVD-GAN-FP:
# the last conditioning frame is added in tanh's argument; generator.py).
OUTPUT_SKIPS = ("none", "last_frame")


def g_multipliers(resolution: int) -> tuple[tuple[int, int], ...]:
    """The BigGAN G table for `resolution`, or a doubling/halving extension of it."""
    if resolution in G_ARCH:
        return G_ARCH[resolution]
    raise ValueError(
        f"no generator channel table for resolution={resolution}; "
        f"expected one of {sorted(G_ARCH)} or set model.g_multipliers explicitly"
    )


def d_multipliers(resolution: int) -> tuple[int, ...]:
    """The BigGAN D table for `resolution` (D_T uses the table of resolution/2)."""
    if resolution in D_ARCH:
        return D_ARCH[resolution]
    raise ValueError(
        f"no discriminator channel table for resolution={resolution}; "
        f"expected one of {sorted(D_ARCH)} or set model.ds_multipliers / "
        "model.dt_multipliers explicitly"
    )


def base_config() -> ml_collections.ConfigDict:
    """Paper defaults (DVD-GAN v2, Kinetics-600 12x64x64); files override fields."""
    c = ml_collections.ConfigDict()

    c.model = ml_collections.ConfigDict()
    c.model.resolution = 64  # H = W of the generated video.
    c.model.num_frames = 12  # T.
    c.model.num_classes = 600
    c.model.z_dim = Z_DIM
    c.model.embed_dim = EMBED_DIM
    c.model.g_ch = 96  # BigGAN's ch at 128x128; G widths are g_ch * multiplier.
    c.model.d_ch = 96
    # Tables; empty means "the BigGAN table for this resolution" (filled by finalize).
    c.model.g_multipliers = ()
    c.model.ds_multipliers = ()
    c.model.dt_multipliers = ()
    c.model.k = 8  # D_S scores k frames sampled uniformly without replacement.
    c.model.dt_pool = 2  # D_T sees the video 2x2 average-pooled (phi in the paper).
    c.model.gru_kernel = 3  # Not stated in the paper; 3x3 is the natural choice.
    c.model.bn_momentum = 0.99
    c.model.bn_epsilon = 1e-4
    c.model.sn_epsilon = 1e-4
    # DVD-GAN-FP (future prediction): C > 0 real frames condition G, which then
    # generates the num_frames (T) frames that follow; clips are C + T frames long
    # (`clip_frames`) and both discriminators judge all C + T. 0 = plain generation.
    c.model.conditioning_frames = 0
    # Which ConvGRUs the -FP frame encoder initialises: "first" (the paper's text) or
    # "all" (each from the encoder's features at its resolution; encoder.py).
    c.model.encoder_states = "first"
    # The -FP frame encoder's conv padding: "zeros" (D_S's) or "reflect" (a flat
    # frame then gives spatially constant states; encoder.py).
    c.model.encoder_padding = "zeros"
    # G's output for -FP: "none" (the paper) or "last_frame" (tanh(out + atanh(the last
    # conditioning frame)): predicting "no change" is G's zero output; generator.py).
    c.model.output_skip = "none"

    c.data = ml_collections.ConfigDict()
    c.data.name = "synthetic_actions"  # | "ucf101" | "folder:/path" | other TFDS
    c.data.data_dir = ""  # TFDS data_dir; "" = TFDS default (~/tensorflow_datasets).
    c.data.frame_stride = 1
    c.data.shuffle_buffer = 1024
    c.data.random_crop = True
    c.data.num_train_examples = 12000  # Built-in dataset size (train split).
    c.data.seed = 0
    # synthetic_actions training only: each run of NUM_CLASSES clips in a batch holds
    # every class once (needs train.batch_size a multiple of the classes per replica);
    # False = clips drawn uniformly from the shuffled set (a class may be absent).
    c.data.class_balanced = False

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 512  # Global batch; split across replicas.
    c.train.num_steps = 300_000
    c.train.d_steps = 2  # Paper: 2 D updates per G update.
    c.train.g_lr = 1e-4
    c.train.d_lr = 5e-4
    # Both rates fall linearly to lr_final_fraction of their value over the run's
    # last lr_decay_steps steps (dvdgan_tf/schedules.py); 0 = constant (paper).
    c.train.lr_decay_steps = 0
    c.train.lr_final_fraction = 0.0
    c.train.beta1 = 0.0  # Not stated in DVD-GAN; BigGAN's values.
    c.train.beta2 = 0.999
    c.train.adam_epsilon = 1e-6
    c.train.ema_decay = 0.9999
    c.train.ema_start = 20_000
    # > 0: the average's horizon 1/(1 - d) is at most this fraction of the G steps
    # done, so early averages are short (dvdgan_tf/schedules.py EMADecay); 0 = off.
    c.train.ema_rampup = 0.0
    # Where the EMA generator's BatchNorm statistics come from during training:
    # "forward" (its own forward pass each step, one more G forward) or "copy"
    # (G's, free; pair with eval.standing_stats > 0). dvdgan_tf/model.py _update_ema.
    c.train.ema_statistics = "forward"
    # D_T's weight in G's loss -(mean D_S + w mean D_T); paper: 1 (dvdgan_tf/losses.py).
    c.train.g_dt_weight = 1.0
    # ((step, w), ...): from G step `step` on (steps done), D_T's weight is `w`, the
    # last entry reached; train.g_dt_weight before the first. () = constant.
    c.train.g_dt_weight_schedule = ()
    c.train.fake_labels = "real"  # "real": reuse the real batch's labels | "uniform"
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.log_every = 100
    c.train.sample_every = 5000
    c.train.steps_per_execution = 1
    c.train.seed = 0

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 512
    c.eval.batch_size = 16
    c.eval.metrics = "builtin"  # comma list: builtin,fvd,fid,is
    c.eval.every = 0  # >0: evaluation callback every N train steps.
    c.eval.truncation = 0.0  # 0 = no truncation.
    # >0: the EMA generator's BatchNorm statistics are recomputed from this many
    # batches of train.batch_size before it is scored, sampled or exported
    # (dvdgan_tf/standing_stats.py); 0: the statistics kept during training.
    c.eval.standing_stats = 0
    # The callback also scores the raw (non-EMA) generator, as "raw/<metric>":
    # shows how far the EMA lags or leads G during a run.
    c.eval.raw_generator = False

    c.runtime = ml_collections.ConfigDict()
    c.runtime.jit_compile = "auto"  # "auto" | "true" | "false"
    # "float32" | "bfloat16" | "mixed_float16" | "auto" (bfloat16 on CPUs with
    # AMX-BF16 or AVX512_BF16, float32 elsewhere: runtime.resolve_precision).
    c.runtime.mixed_precision = "float32"
    # "forward" | "native": a conv's input gradient as a forward conv with the kernel
    # flipped (1.05-5x faster kernels on an AVX2 CPU) or TF's backprop-input op
    # (layers.set_conv_input_grad; the same numbers either way).
    c.runtime.conv_input_grad = "forward"
    # TensorFlow's graph optimizer (Grappler: op fusions, layout, constant folding)
    # on every tf.function graph; process-wide (runtime.set_graph_optimizations). Off,
    # the default CPU config's first train step started 13-21 s sooner but its steps
    # ran 13-23% slower on a 2-vCPU AVX2 CPU (BENCHMARKS.md, "Grappler"): on, except
    # in runlocal.
    c.runtime.graph_optimizations = True
    c.runtime.runlocal = False
    return c


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks `c` to a CPU-sized smoke version of the same experiment."""
    c.runtime.runlocal = True
    c.model.resolution = 16
    c.model.num_frames = min(c.model.num_frames, 4)
    c.model.conditioning_frames = min(c.model.conditioning_frames, 2)
    c.model.k = min(c.model.k, 2)
    c.model.g_ch = 4
    c.model.d_ch = 4
    c.model.g_multipliers = ((2, 2), (2, 1))
    c.model.ds_multipliers = (1, 2, 2)
    c.model.dt_multipliers = (1, 2, 2)
    c.model.z_dim = 8
    c.model.embed_dim = 8
    c.train.batch_size = 2
    # One D step per G step: 28% fewer graph ops in the train step (17,692 against
    # 24,653), which then traces and starts in ~20 s instead of ~30 s on 2 cores;
    # a smoke run's time is mostly that. The tests that exercise two D steps set them.
    c.train.d_steps = 1
    c.train.num_steps = 4
    c.train.lr_decay_steps = min(c.train.lr_decay_steps, c.train.num_steps)
    c.train.ema_start = 2
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    c.train.sample_every = 0
    c.data.num_train_examples = 32
    c.data.shuffle_buffer = 32
    c.eval.num_samples = 8
    c.eval.batch_size = 4
    c.eval.standing_stats = min(c.eval.get("standing_stats", 0), 4)
    # "auto" precision -> float32: at smoke sizes bfloat16 saves nothing (the step is
    # overhead-bound) and would make the numerics depend on the CPU's flags.
    if c.runtime.mixed_precision == "auto":
        c.runtime.mixed_precision = "float32"
    # No Grappler: its ~6 s at the first train step (of ~25 s to start on 2 cores) buy
    # nothing at smoke sizes, where a step is ~60 ms either way (BENCHMARKS.md).
    c.runtime.graph_optimizations = False
    return c


def clip_frames(c) -> int:
    """Frames per real clip: conditioning_frames + num_frames (C + T).

    `c` is a full config or its `model` section. The input pipeline yields clips of
    this length and both discriminators judge them; G generates the last T.
    """
    m = c.model if "model" in c else c
    return m.conditioning_frames + m.num_frames


def finish(c: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies the variant `arg` (None or "runlocal") and finalises `c`."""
    if arg == "runlocal":
        runlocal(c)
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; expected 'runlocal' or none")
    return finalize(c)


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fills the channel tables from the resolution, validates and locks `c`."""
    m = c.model
    if not m.g_multipliers:
        m.g_multipliers = g_multipliers(m.resolution)
    if not m.ds_multipliers:
        m.ds_multipliers = d_multipliers(m.resolution)
    if not m.dt_multipliers:
        m.dt_multipliers = d_multipliers(m.resolution // m.dt_pool)
    validate(c)
    c.lock()
    return c


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def _is_weight(w) -> bool:
    return not isinstance(w, bool) and isinstance(w, (int, float)) and w >= 0


def check_weight(w, name: str) -> float:
    """A loss weight: a number >= 0 (not a bool), returned as a float; raises
    ValueError quoting `name` and the bad value otherwise."""
    if not _is_weight(w):
        raise ValueError(f"{name} must be a number >= 0; received {name}={w!r}")
    return float(w)


def check_weight_schedule(schedule, name: str) -> tuple[tuple[int, float], ...]:
    """A piecewise-constant weight schedule as ((step, weight), ...) with ints
    step >= 0 strictly increasing and weights >= 0; raises ValueError quoting
    `name` and the bad value otherwise."""

    def bad(why):
        return ValueError(f"{name} {why}; received {name}={schedule!r}")

    if not isinstance(schedule, (list, tuple)):
        raise bad("must be a sequence of (step, weight) pairs")
    pairs = []
    for entry in schedule:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise bad(f"must hold (step, weight) pairs, not {entry!r}")
        step, w = entry
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise bad(f"steps must be ints >= 0, not {step!r}")
        if not _is_weight(w):
            raise bad(f"weights must be numbers >= 0, not {w!r}")
        if pairs and step <= pairs[-1][0]:
            raise bad("steps must increase strictly")
        pairs.append((step, float(w)))
    return tuple(pairs)


def check_replica_batch(c: ml_collections.ConfigDict, replicas: int) -> None:
    """Raises ValueError unless each replica's D-step chunk can be class-balanced.

    With `data.class_balanced`, a replica's chunk of train.batch_size / replicas
    clips must be a whole number of runs of model.num_classes (one clip per class).
    """
    if c.data.get("class_balanced", False) and (
        c.train.batch_size % (replicas * c.model.num_classes)
    ):
        raise ValueError(
            "data.class_balanced needs train.batch_size to be a multiple of "
            f"replicas x model.num_classes = {replicas} x {c.model.num_classes}; "
            f"received train.batch_size={c.train.batch_size!r}"
        )


def validate(c: ml_collections.ConfigDict) -> None:
    """Raises ValueError quoting the first bad value in `c`."""
    m, t = c.model, c.train
    r = m.resolution
    if not (isinstance(r, int) and r >= 8 and r % 4 == 0 and _is_pow2(r // 4)):
        raise ValueError(
            f"model.resolution must be 4 * 2**n with n >= 1 (8, 16, 32, 64, ...); "
            f"received model.resolution={r!r}"
        )
    if len(m.g_multipliers) != (r // 4).bit_length() - 1:
        raise ValueError(
            f"model.g_multipliers needs one (in, out) pair per doubling from 4 to "
            f"{r}, i.e. {(r // 4).bit_length() - 1} pairs; received "
            f"model.g_multipliers={tuple(m.g_multipliers)!r}"
        )
    if m.num_frames < 1:
        raise ValueError(f"model.num_frames must be >= 1; received {m.num_frames!r}")
    if not 1 <= m.k <= m.num_frames:
        raise ValueError(
            "model.k must satisfy 1 <= k <= num_frames; received "
            f"k={m.k!r}, num_frames={m.num_frames!r}"
        )
    if m.num_classes < 1:
        raise ValueError(f"model.num_classes must be >= 1; received {m.num_classes!r}")
    cf = m.conditioning_frames
    if not isinstance(cf, int) or cf < 0:
        raise ValueError(
            "model.conditioning_frames must be an int >= 0 (0 = plain generation); "
            f"received model.conditioning_frames={cf!r}"
        )
    if cf and t.fake_labels != "real":
        raise ValueError(
            "DVD-GAN-FP predicts the continuation of a real clip, so its fakes take "
            "that clip's label: train.fake_labels must be 'real' when "
            f"model.conditioning_frames={cf}; received {t.fake_labels!r}"
        )
    if m.encoder_states not in ("first", "all"):
        raise ValueError(
            "model.encoder_states must be 'first' or 'all'; received "
            f"model.encoder_states={m.encoder_states!r}"
        )
    if m.encoder_padding not in ("zeros", "reflect"):
        raise ValueError(
            "model.encoder_padding must be 'zeros' or 'reflect'; received "
            f"model.encoder_padding={m.encoder_padding!r}"
        )
    if m.output_skip not in OUTPUT_SKIPS:
        raise ValueError(
            f"model.output_skip must be one of {OUTPUT_SKIPS}; received "
            f"model.output_skip={m.output_skip!r}"
        )
    if m.output_skip != "none" and not cf:
        raise ValueError(
            f"model.output_skip={m.output_skip!r} adds the last conditioning frame to "
            "G's output and needs model.conditioning_frames > 0; received "
            f"model.conditioning_frames={cf!r}"
        )
    if m.dt_pool < 1 or r % m.dt_pool:
        raise ValueError(
            f"model.dt_pool must divide the resolution; received dt_pool={m.dt_pool!r}, "
            f"resolution={r!r}"
        )
    if t.batch_size < 1:
        raise ValueError(f"train.batch_size must be >= 1; received {t.batch_size!r}")
    if t.d_steps < 1:
        raise ValueError(f"train.d_steps must be >= 1; received {t.d_steps!r}")
    decay = t.get("lr_decay_steps", 0)
    if (
        not isinstance(decay, int)
        or isinstance(decay, bool)
        or not (0 <= decay <= t.num_steps)
    ):
        raise ValueError(
            f"train.lr_decay_steps must be an int in [0, train.num_steps={t.num_steps}]"
            f"; received train.lr_decay_steps={decay!r}"
        )
    final = t.get("lr_final_fraction", 0.0)
    if not 0.0 <= final <= 1.0:
        raise ValueError(
            "train.lr_final_fraction must be in [0, 1]; received "
            f"train.lr_final_fraction={final!r}"
        )
    if not 0.0 <= t.ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1); received {t.ema_decay!r}")
    check_weight(t.get("ema_rampup", 0.0), "train.ema_rampup")
    if t.get("ema_statistics", "forward") not in EMA_STATISTICS:
        raise ValueError(
            "train.ema_statistics must be 'forward' or 'copy'; received "
            f"train.ema_statistics={t.ema_statistics!r}"
        )
    check_weight(t.get("g_dt_weight", 1.0), "train.g_dt_weight")
    check_weight_schedule(
        t.get("g_dt_weight_schedule", ()), "train.g_dt_weight_schedule"
    )
    if c.data.get("class_balanced", False):
        if c.data.name != "synthetic_actions":
            raise ValueError(
                "data.class_balanced needs data.name='synthetic_actions'; received "
                f"data.name={c.data.name!r}"
            )
        check_replica_batch(c, replicas=1)
    if t.fake_labels not in ("real", "uniform"):
        raise ValueError(
            f"train.fake_labels must be 'real' or 'uniform'; received {t.fake_labels!r}"
        )
    ss = c.eval.get("standing_stats", 0)
    if not isinstance(ss, int) or isinstance(ss, bool) or ss < 0:
        raise ValueError(
            "eval.standing_stats must be an int >= 0 (batches; 0 = off); received "
            f"eval.standing_stats={ss!r}"
        )
    if str(c.runtime.jit_compile).lower() not in ("auto", "true", "false"):
        raise ValueError(
            "runtime.jit_compile must be 'auto', 'true' or 'false'; received "
            f"{c.runtime.jit_compile!r}"
        )
    check_precision(c.runtime.mixed_precision)
    check_conv_input_grad(c.runtime.get("conv_input_grad", "forward"))
    grappler = c.runtime.get("graph_optimizations", True)
    if not isinstance(grappler, bool):
        raise ValueError(
            "runtime.graph_optimizations must be True or False; received "
            f"runtime.graph_optimizations={grappler!r}"
        )


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/config.py[:arg]` as `config_flags` does, for tests and APIs."""
    import importlib.util
    import os

    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path!r} (from {spec!r})")
    name = "dvdgan_config_" + os.path.splitext(os.path.basename(path))[0]
    spec_obj = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec_obj)
    spec_obj.loader.exec_module(module)
    return module.get_config(arg or None)
