"""Batch bakes (training/batch.py, `neumat bake A B ... [--cluster]`): several materials in one
command; on Ray two bakes run in parallel and give the same assets as serial bakes, a killed
worker's bake is retried and resumes from its checkpoint, a bad material fails alone, Ctrl-C leaves
resumable checkpoints. One local Ray instance with two CPUs serves the module (Ray takes seconds
to start); the tests without Ray come first and run without it."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from neumat.cli import main
from neumat.training.bake import BakeInterrupted, BakeSettings, bake, checkpoint_location
from neumat.training.batch import (DONE, FAILED, INTERRUPTED, KILL_HOOK_ENV, BatchOptions, exit_code, run_batch,
                            summary_table)
from neumat.training.export import load_model

from conftest import TINY_MATERIAL_TOML
from test_bake import CHECKER_TOML

KILL_STEP = 10  # the doomed bake's first worker dies here; its last checkpoint is step 8
CHECKPOINT_EVERY = 4


def materials(folder: Path, *names: str) -> list[Path]:
    """Small material files: `tiny` (conftest's), checker variants under other names, and `bad`
    (an alpha out of range: fails validation) and `ranged` (loads, but a node drives albedo out of
    range: fails in the bake itself)."""
    checker = CHECKER_TOML.format(resolution=16)
    texts = {"tiny": TINY_MATERIAL_TOML,
             "bad": checker.replace("alpha = 0.25", "alpha = -0.1"),
             "ranged": checker.replace('factor = "check"', "factor = 3.0")}
    paths = []
    for name in names:
        text = texts.get(name, checker)
        path = folder / f"{name}.toml"
        path.write_text(text.replace('name = "checker_test"', f'name = "{name}"'))
        paths.append(path)
    return paths


def options(iterations: int = 30) -> BatchOptions:
    """Tiny bakes: 30 iterations of 512 samples at 16 x 16, no report; one torch thread on every
    path so serial and Ray bakes round alike."""
    settings = BakeSettings(iterations=iterations, resolution=16, batch_size=512, checkpoint_every=CHECKPOINT_EVERY,
                            report=False, train_overrides={"target_queries": 1})
    return BatchOptions(settings=settings, cores=1, progress=False)


def assert_same_weights(a: Path, b: Path) -> None:
    """Latents, decoders, frames and sampler of two assets agree (same seed, same arithmetic)."""
    sa, sb = load_model(a).state_dict(), load_model(b).state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_parser_imports_no_ray():
    code = "import sys\nfrom neumat.cli import build_parser\nbuild_parser().format_help()\nprint('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def test_serial_batch_bakes_each_and_a_bad_material_fails_alone(tmp_path, capsys):
    tiny, bad, other = materials(tmp_path, "tiny", "bad", "other")
    out = tmp_path / "out"
    assert main(["bake", str(tiny), str(bad), str(other), "-o", str(out), "--iterations", "4", "--batch-size", "256",
                 "--resolution", "8", "--no-report", "-q"]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["other.neumat", "tiny.neumat"]
    assert "bad: bad.toml: layers[1].alpha: must be in [0, 1], got -0.1" in captured.out
    assert "2 of 3 baked; 1 failed" in captured.out


def test_batch_options_are_checked_before_any_bake(tmp_path, capsys, monkeypatch):
    tiny, other = materials(tmp_path, "tiny", "other")
    base = ["bake", str(tiny), str(other), "--iterations", "4", "-q"]
    assert main([*base, "-o", str(tmp_path / "x.neumat")]) == 2
    assert "with several materials -o is the folder" in capsys.readouterr().err
    assert main([*base, "--cpus-per-bake", "2"]) == 2
    assert "need --cluster" in capsys.readouterr().err
    assert main([*base, "--network", "9x9"]) == 2
    assert "unknown network size" in capsys.readouterr().err
    if importlib.util.find_spec("ray") is not None:
        assert main([*base, "--cluster", "127.0.0.1:1"]) == 2  # Ray alone would retry for minutes
        assert "--cluster 127.0.0.1:1: nothing answers at 127.0.0.1:1" in capsys.readouterr().err
        assert main([*base, "--cluster", "nonsense"]) == 2
        assert "not local, auto, HOST:PORT or ray://HOST:PORT" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    assert main([*base, "--cluster", "local"]) == 2
    assert "pip install 'neumat[cluster]'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.toml", "tiny.toml"]


def test_resume_in_a_batch_continues_the_checkpointed_bakes_and_starts_the_others(tmp_path):
    """A batch interrupted half-way leaves one bake with a checkpoint and one never started:
    `--resume` continues the first from its step and bakes the second afresh."""
    first, second = materials(tmp_path, "first", "second")
    out = tmp_path / "out"

    def stop_at_5(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    opts = options(12)
    with pytest.raises(BakeInterrupted):
        bake(first, out, opts.settings, progress=False, callback=stop_at_5, cores=1)
    outcomes = run_batch([first, second], out, replace(opts, resume=True))
    assert [(o.state, o.resumed_from, o.steps) for o in outcomes] == [(DONE, 5, 12), (DONE, 0, 12)]


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance with two CPUs (two bakes at a time) for the module; the kill hook
    aims at the material named `doomed` only."""
    ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed: tools/install.sh")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {KILL_HOOK_ENV: f"doomed:{KILL_STEP}"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_parallel_bakes_match_serial_ones_and_bad_materials_fail_alone(tmp_path, ray_cluster):
    """Two bakes on two CPUs run at the same time and write the assets serial bakes write; a
    material that does not load (`bad`) and one whose bake fails (`ranged`) fail with their messages."""
    paths = materials(tmp_path, "tiny", "bad", "other", "ranged")
    outcomes = run_batch(paths, tmp_path / "ray", options(), cluster="local")
    by = {o.name: o for o in outcomes}
    assert [o.name for o in outcomes] == ["tiny", "bad", "other", "ranged"]  # the command's order
    assert by["tiny"].state == DONE and by["other"].state == DONE, summary_table(outcomes)
    assert by["bad"].state == FAILED and "layers[1].alpha: must be in [0, 1], got -0.1" in by["bad"].error
    assert by["ranged"].state == FAILED and "albedo must be in [0, 1]" in by["ranged"].error
    assert exit_code(outcomes) == 1
    assert by["tiny"].started < by["other"].ended and by["other"].started < by["tiny"].ended  # in parallel
    serial = run_batch([paths[0], paths[2]], tmp_path / "serial", options())
    assert [o.state for o in serial] == [DONE, DONE]
    for o in serial:
        assert_same_weights(by[o.name].asset, o.asset)
    table = summary_table(outcomes)
    assert "2 of 4 baked; 2 failed:" in table and str(by["tiny"].asset) in table


def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(tmp_path, ray_cluster):
    """`doomed`'s first worker SIGKILLs itself at step 10 (KILL_HOOK_ENV), as the OOM killer or a
    lost node would; Ray retries the task, which resumes from the step-8 checkpoint and ends where
    an uninterrupted serial bake ends."""
    paths = materials(tmp_path, "doomed")
    [outcome] = run_batch(paths, tmp_path / "ray", options(), cluster="local")
    assert outcome.state == DONE, outcome.error
    assert outcome.attempts == 2 and outcome.resumed_from == KILL_STEP // CHECKPOINT_EVERY * CHECKPOINT_EVERY
    assert not checkpoint_location(outcome.asset).exists()  # removed once the asset is written
    [serial] = run_batch(paths, tmp_path / "serial", options())
    assert_same_weights(outcome.asset, serial.asset)
    assert "done (2 attempts), resumed at 8" in summary_table([outcome])


@pytest.mark.parametrize("presses", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_ctrl_c_of_a_cluster_batch_checkpoints_every_bake_and_exits_130(tmp_path, ray_cluster, presses):
    """The real command in a subprocess joins the module's Ray instance by its address; SIGINT
    once both bakes have a checkpoint: both stop at a step (or, at a second Ctrl-C, are killed),
    keep a loadable checkpoint and write no asset."""
    paths = materials(tmp_path, "first", "second")
    out = tmp_path / "out"
    ckpts = [checkpoint_location(out / f"{p.stem}.neumat") for p in paths]
    proc = subprocess.Popen([sys.executable, "-m", "neumat", "bake", *map(str, paths), "-o", str(out),
                             "--cluster", ray_cluster, "--iterations", "1000000", "--batch-size", "256",
                             "--resolution", "8", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.time() + 120
        while not all(c.exists() for c in ckpts) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
        assert all(c.exists() for c in ckpts), proc.communicate()[1] if proc.poll() is not None else "no checkpoints"
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.1)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    if presses == 1:  # a second press may land anywhere, even after the summary
        assert "--resume" in stderr and stdout.count(INTERRUPTED) == 2, stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(c.name for c in ckpts)  # no asset, no temporaries
    for c in ckpts:
        assert torch.load(c, weights_only=True)["trainer"]["step"] >= 250  # checkpoint_every's default


@pytest.mark.slow
def test_the_command_with_its_own_local_ray_instance(tmp_path):
    """The issue's command, smaller: `--cluster local` starts (and stops) a Ray instance of its own."""
    paths = materials(tmp_path, "tiny", "other")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "neumat", "bake", *map(str, paths), "--cluster", "local", "-o",
                             str(out), "--iterations", "200", "--resolution", "16", "--batch-size", "2048",
                             "--no-report"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "2 of 2 baked" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["other.neumat", "tiny.neumat"]
