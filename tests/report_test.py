"""The learning-curve report: table rows from eval records, raw-G column, plot."""

import json
import os

import pytest

from dvdgan_tf import report


def _record(workdir, step, acc, raw=None, spread=None):
    metrics = {
        "builtin/class_accuracy": acc,
        "builtin/frechet": 100.0 / step,
        "builtin/frechet_real_real": 2.5,
        "builtin/diversity_ratio": 0.75,
    }
    if raw is not None:
        metrics["raw/builtin/class_accuracy"] = raw
    if spread is not None:
        metrics["builtin/background_spread_ratio"] = spread
    start = os.path.getmtime(os.path.join(workdir, "config.json"))
    with open(os.path.join(workdir, "eval", f"{step}.json"), "w") as f:
        json.dump({"step": step, "wall_time": start + 30 * step, "metrics": metrics}, f)


def test_table_rows_sorted_by_step_with_minutes_and_raw_column(tmp_path):
    w = tmp_path / "run_a"
    os.makedirs(w / "eval")
    (w / "config.json").write_text("{}")
    _record(str(w), 10, 0.5, raw=0.625, spread=0.25)
    _record(str(w), 2, 0.25)
    rows = report.load_curve(str(w))
    assert [r["step"] for r in rows] == [2, 10]
    assert [r["minutes"] for r in rows] == pytest.approx([1.0, 5.0])  # 30 s/step
    table = report.markdown_table({"run_a": rows}).splitlines()
    # The step-2 record predates the background metric: "-" in its column.
    assert table[2] == "| run_a | 2 | 1.0 | 0.250 | 50.0 (2.5) | 0.75 | - |"
    assert table[3] == "| run_a | 10 | 5.0 | 0.500 (0.625) | 10.0 (2.5) | 0.75 | 0.25 |"
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "curve.png"
    report.plot({"run_a": rows}, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_minutes_come_from_run_seconds_when_recorded(tmp_path):
    # A resumed run: its config.json was rewritten at the resume, hours after the
    # first records; run_seconds (training time, pauses excluded) is used instead.
    w = tmp_path / "resumed"
    os.makedirs(w / "eval")
    (w / "config.json").write_text("{}")
    _record(str(w), 2, 0.25)
    _record(str(w), 4, 0.5)
    for step, seconds in ((2, 120.0), (4, 300.0)):
        path = w / "eval" / f"{step}.json"
        rec = json.loads(path.read_text())
        rec["run_seconds"] = seconds
        rec["wall_time"] += 3 * 3600  # after a 3-hour pause: must not count
        path.write_text(json.dumps(rec))
    rows = report.load_curve(str(w))
    assert [r["minutes"] for r in rows] == pytest.approx([2.0, 5.0])


def test_report_command_prints_table_and_writes_plot(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    w = tmp_path / "run_b"
    os.makedirs(w / "eval")
    (w / "config.json").write_text("{}")
    _record(str(w), 4, 0.5)
    out = tmp_path / "curve.png"
    proc = subprocess.run(
        [sys.executable, "-m", "dvdgan_tf.report", f"--workdirs={w}", f"--out={out}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| run_b | 4 | 2.0 | 0.500 | 25.0 (2.5) | 0.75 |" in proc.stdout
    assert out.exists()


def test_class_target_is_80_percent_for_prediction_runs_90_for_generation(tmp_path):
    for name, model, want in (
        ("gen", {"conditioning_frames": 0}, report.GENERATION_TARGET),
        ("fp", {"conditioning_frames": 4}, report.PREDICTION_TARGET),
        ("old", None, report.GENERATION_TARGET),  # a config without the field
        # An FP run saved before the field's rename (checkpoints maps it).
        ("renamed", {"conditional_frames": 4}, report.PREDICTION_TARGET),
    ):
        w = tmp_path / name
        os.makedirs(w)
        config = {} if model is None else {"model": model}
        (w / "config.json").write_text(json.dumps(config))
        assert report.class_target(str(w)) == want, name
    assert (report.PREDICTION_TARGET, report.GENERATION_TARGET) == (0.8, 0.9)
