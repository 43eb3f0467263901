"""The bake job (training/bake.py) and `neumat bake`: a short bake of a small spatially varying
material gets close to its reference; an interrupted bake leaves a checkpoint and no asset, and
resuming it ends where an uninterrupted bake ends; bad input is a NeumatError (exit 2) before
anything is written; Ctrl-C of the real command exits 130."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neumat.cli import main
from neumat.renderer.core.errors import NeumatError
from neumat.training import bake as bake_mod
from neumat.training.bake import BakeInterrupted, BakeSettings, bake, checkpoint_location
from neumat.training.export import load_model

CHECKER_TOML = """
[material]
name = "checker_test"
description = "two diffuse albedos in a checker, a clear coat on the light squares"
resolution = {resolution}

[nodes.check]
type = "checker"
columns = 4
rows = 4

[nodes.albedo]
type = "mix"
a = [0.1, 0.3, 0.7]
b = [0.8, 0.3, 0.1]
factor = "check"

[[layers]]
type = "diffuse"
albedo = "albedo"

[[layers]]
type = "dielectric"
weight = "check"
ior = 1.5
alpha = 0.25
thickness = 0
"""


def write_material(folder: Path, resolution: int = 16, text: str = CHECKER_TOML) -> Path:
    path = folder / "checker_test.toml"
    path.write_text(text.format(resolution=resolution))
    return path


def tiny(iterations: int = 8, **kw) -> BakeSettings:
    """Small, fast settings (no report unless asked)."""
    kw.setdefault("report", False)
    return BakeSettings(iterations=iterations, batch_size=512, checkpoint_every=4,
                        train_overrides={"target_queries": 1}, **kw)


def leftovers(folder: Path) -> list[str]:
    """Anything a bake may leave behind besides the material file."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".toml")


def test_cli_defaults_match_the_bake_module(capsys):
    """`neumat bake --help` states the library's defaults (training/settings.py), read, not copied."""
    from neumat.cli import main
    from neumat.training import settings

    with pytest.raises(SystemExit):
        main(["bake", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for value in (settings.DEFAULT_RESOLUTION, settings.DEFAULT_ITERATIONS, settings.DEFAULT_BATCH,
                  settings.AUTO_NETWORK, settings.DEFAULT_DIRECTIONS):
        assert f"(default {value})" in text or f"at most {value})" in text, value
    assert all(size in text for size in settings.EVALUATOR_SIZES)
    assert bake_mod.BakeSettings is settings.BakeSettings


def test_asset_location():
    assert bake_mod.asset_location("out/x.neumat", "brass") == Path("out/x.neumat")
    assert bake_mod.asset_location("out", "brass") == Path("out/brass.neumat")
    assert bake_mod.asset_location(None, "brass") == Path.cwd() / "brass.neumat"
    assert checkpoint_location(Path("out/brass.neumat")) == Path("out/brass.neumat.checkpoint.pt")


def test_short_bake_gets_close_to_the_reference(tmp_path):
    """A 32 x 32 checker with a coat on half the squares: 300 iterations of 4096 samples. Held-out
    relative L1 (report.py; the untrained model: ~0.95): 0.13, 0.11, 0.10 for seeds 0-2 on one
    machine, and 0.114, 0.091, 0.111, 0.086, 0.113, 0.093, 0.084, 0.096 for seeds 0, 3-9 on another.
    Another machine's float rounding makes training diverge like another seed would, so the bound
    comes from the spread over seeds: mean 0.10, standard deviation 0.014; 0.17 is about 5 of them
    above the mean and 0.04 above the worst seed. With the output started at the median target and
    one-query targets (issue 14): 0.130, 0.121, 0.128, 0.129, 0.081 for seeds 0-4 (0.04 below the
    bound), and held-out skill 0.76-0.88 (a constant scores <= 0; the bound 0.6 leaves 0.16)."""
    mat = write_material(tmp_path, 32)
    settings = BakeSettings(iterations=300, batch_size=4096, resolution=32, report=True, heldout_queries=8192)
    result = bake(mat, tmp_path, settings, progress=False)
    assert result.asset == tmp_path / "checker_test.neumat" and result.steps == 300
    m = result.report["metrics"]
    assert m["heldout_rel_l1"] < 0.17, m
    assert m["heldout_skill"] > 0.6, m
    assert (result.asset / "manifest.json").is_file() and (result.asset / "report" / "report.md").is_file()
    assert not checkpoint_location(result.asset).exists()  # removed once the asset is written
    assert leftovers(tmp_path) == ["checker_test.neumat"]
    model = load_model(result.asset)
    assert model.config.resolution == 32 and model.config.evaluator == "2x32"


def test_interrupt_then_resume_matches_an_uninterrupted_bake(tmp_path):
    mat = write_material(tmp_path)
    full = bake(mat, tmp_path / "full.neumat", tiny(12), progress=False)

    def stop_at_7(record):
        if record["step"] == 7:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.neumat"
    with pytest.raises(BakeInterrupted) as info:
        bake(mat, out, tiny(12), progress=False, callback=stop_at_7)
    assert info.value.step == 7 and info.value.checkpoint == checkpoint_location(out)
    assert "--resume" in str(info.value)
    assert not out.exists()  # no asset, not even a partial one
    assert leftovers(tmp_path) == ["full.neumat", "resumed.neumat.checkpoint.pt"]

    steps = []
    resumed = bake(mat, out, tiny(12), resume=True, progress=False, callback=lambda r: steps.append(r["step"]))
    assert steps == [8, 9, 10, 11, 12] and resumed.steps == 12
    assert resumed.training["resumed_from_step"] == 7
    a, b = load_model(full.asset), load_model(resumed.asset)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert leftovers(tmp_path) == ["full.neumat", "resumed.neumat"]


def test_interrupt_in_the_encoder_phase_resumes_in_it(tmp_path):
    mat = write_material(tmp_path)

    def stop_at_2(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(BakeInterrupted):
        bake(mat, tmp_path, tiny(10), progress=False, callback=stop_at_2)
    state = torch.load(checkpoint_location(tmp_path / "checker_test.neumat"), weights_only=True)
    assert state["trainer"]["step"] == 2 and state["trainer"]["has_encoder"]
    phases = []
    bake(mat, tmp_path, tiny(10), resume=True, progress=False, callback=lambda r: phases.append(r["phase"]))
    assert phases == [1, 1, 1, 2, 2, 2, 2, 2]


def test_resume_refuses_other_settings_material_or_no_checkpoint(tmp_path):
    mat = write_material(tmp_path)
    with pytest.raises(NeumatError, match="no checkpoint"):
        bake(mat, tmp_path, tiny(), resume=True, progress=False)

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(BakeInterrupted):
        bake(mat, tmp_path, tiny(), progress=False, callback=stop)
    with pytest.raises(NeumatError, match="other settings.*evaluator"):
        bake(mat, tmp_path, tiny(evaluator="2x16"), resume=True, progress=False)
    with pytest.raises(NeumatError, match="other settings.*iterations"):
        bake(mat, tmp_path, tiny(16), resume=True, progress=False)
    with pytest.raises(NeumatError, match="other settings.*seed"):
        bake(mat, tmp_path, tiny(seed=3), resume=True, progress=False)
    mat.write_text(mat.read_text().replace("alpha = 0.25", "alpha = 0.3"))
    with pytest.raises(NeumatError, match="another version of material"):
        bake(mat, tmp_path, tiny(), resume=True, progress=False)
    assert leftovers(tmp_path) == ["checker_test.neumat.checkpoint.pt"]


def test_bad_input_is_a_neumat_error_and_writes_nothing(tmp_path):
    good = write_material(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(CHECKER_TOML.format(resolution=16).replace("alpha = 0.25", "alpha = -0.1"))
    ranged = tmp_path / "ranged.toml"  # valid constants, but a node drives albedo out of range
    ranged.write_text(CHECKER_TOML.format(resolution=16).replace('factor = "check"', 'factor = 3.0'))
    cases = [
        (bad, tmp_path, tiny(), "must be in \\[0, 1\\]"),
        (ranged, tmp_path, tiny(), "albedo must be in"),
        (tmp_path / "missing.toml", tmp_path, tiny(), "cannot read"),
        (good, tmp_path, tiny(evaluator="4x4"), "unknown network size"),
        (good, tmp_path, tiny(resolution=12), "power of two"),
        (good, good / "x.neumat", tiny(), "is not a folder"),  # the parent is a file
        (good, tmp_path, BakeSettings(iterations=0), "iterations must be >= 1"),
        (good, tmp_path, BakeSettings(iterations=5, time_budget=1.0), "not both"),
        (good, tmp_path, BakeSettings(time_budget=-1.0), "positive"),
        (good, tmp_path, BakeSettings(batch_size=10 ** 12), "batch size must be in \\[64, 4194304\\]"),
    ]
    for material, out, settings, message in cases:
        with pytest.raises(NeumatError, match=message):
            bake(material, out, settings, progress=False)
    with pytest.raises(NeumatError, match="unknown device 'nonsense'"):
        bake(good, tmp_path, tiny(), progress=False, torch_device="nonsense")
    stranger = tmp_path / "taken.neumat"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("not an asset")
    with pytest.raises(NeumatError, match="not a neural asset"):
        bake(good, stranger, tiny(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "checker_test.toml", "ranged.toml", "taken.neumat"]
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]


def test_time_budget_plans_the_iterations(tmp_path):
    mat = write_material(tmp_path)
    settings = BakeSettings(time_budget=0.1, batch_size=512, report=False, replan_every=10,
                            train_overrides={"target_queries": 1})
    start = time.perf_counter()
    result = bake(mat, tmp_path, settings, progress=False)
    elapsed = time.perf_counter() - start
    assert result.steps > 20  # a tiny batch takes well under 0.3 s per step
    assert result.timings["training_s"] < 6 + 3  # 6 s budget, a step or a re-plan late at most
    assert result.training["encoder_iterations"] >= 1 and result.training["finetune_iterations"] >= 1
    assert elapsed < 30


def test_cli_exit_codes(tmp_path, capsys):
    good = write_material(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[material]\nresolution = 12\n")
    assert main(["bake", str(bad), "-o", str(tmp_path)]) == 2
    assert "resolution" in capsys.readouterr().err
    assert main(["bake", str(good), "-o", str(tmp_path), "--network", "9x9"]) == 2
    assert main(["bake", str(good), "-o", str(good / "such")]) == 2  # good is a file
    assert "is not a folder" in capsys.readouterr().err
    assert main(["bake", str(good), "-o", str(tmp_path), "--torch-device", "nonsense"]) == 2
    assert "--torch-device: unknown device 'nonsense' (use cpu, cuda or cuda:N)" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bake", str(good), "-o", str(tmp_path), "--torch-device", "cuda"]) == 2
        assert "--torch-device cuda: " in capsys.readouterr().err
    assert main(["bake", str(good), "-o", str(tmp_path), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse: --iterations and --time-budget exclude each other
        main(["bake", str(good), "--iterations", "5", "--time-budget", "1"])
    assert e.value.code == 2
    assert leftovers(tmp_path) == []
    # -o names a folder that does not exist yet: made, like every other command's output folder.
    rc = main(["bake", str(good), "-o", str(tmp_path / "new" / "deeper"), "--iterations", "4", "--batch-size", "256",
               "--resolution", "8", "--no-report", "-q"])
    assert rc == 0 and (tmp_path / "new" / "deeper" / "checker_test.neumat" / "manifest.json").is_file()
    assert "wrote" in capsys.readouterr().out


def test_ctrl_c_of_the_command_checkpoints_and_exits_130(tmp_path):
    """The real command in a subprocess: SIGINT once the first checkpoint exists."""
    mat = write_material(tmp_path, 8)
    asset = tmp_path / "checker_test.neumat"
    ckpt = checkpoint_location(asset)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "neumat", "bake", str(mat), "-o", str(tmp_path), "--iterations",
                             "1000000", "--batch-size", "256", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint within 60 s"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "--resume" in err and str(ckpt) in err
    assert not asset.exists() and leftovers(tmp_path) == [ckpt.name]
    state = torch.load(ckpt, weights_only=True)
    assert state["trainer"]["step"] >= 250  # checkpoint_every


class _Payload:
    """Unpickling this calls open(path, "w"): any code could stand there."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    good = write_material(tmp_path)
    ran = tmp_path / "payload-ran"
    ckpt = checkpoint_location(tmp_path / "checker_test.neumat")
    torch.save({"checkpoint_version": bake_mod.CHECKPOINT_VERSION, "bake": _Payload(ran), "trainer": {}}, ckpt)
    assert main(["bake", str(good), "-o", str(tmp_path), "--resume", "-q"]) == 2
    err = capsys.readouterr().err
    assert not ran.exists(), "loading the checkpoint ran the code in it"
    assert f"{ckpt}: not a readable bake checkpoint" in err and err.count("\n") == 1
    assert leftovers(tmp_path) == [ckpt.name]


def test_the_resume_hint_is_a_command_that_resumes(tmp_path):
    """The hint printed on Ctrl-C carries the bake's options (resume refuses others); the resumed
    bake's total time includes the interrupted run's, so it is never below its training time."""
    mat = write_material(tmp_path)
    out = tmp_path / "made" / "checker_test.neumat"  # a folder that does not exist yet
    settings = BakeSettings(evaluator="2x16", resolution=8, iterations=6, seed=3, batch_size=256, report=False)

    def stop_at_3(record):
        if record["step"] == 3:
            time.sleep(1.0)  # a slow first run: its training time outweighs the resumed run's other steps
            raise KeyboardInterrupt

    with pytest.raises(BakeInterrupted) as info:
        bake(mat, out, settings, progress=False, callback=stop_at_3)
    hint = str(info.value).split("Resume with: ", 1)[1]
    args = shlex.split(hint)
    assert args[:2] == ["neumat", "bake"] and args[-1] == "--resume"
    for option in ("--network 2x16", "--resolution 8", "--iterations 6", "--seed 3", "--batch-size 256"):
        assert option in hint, hint
    # A temporary folder of a run killed outright (SIGKILL): removed by this later run.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out.parent / f".{out.name}.tmp-{int(dead.stdout)}-x1y2z3"
    stale.mkdir()
    assert main(args[1:] + ["-q"]) == 0
    assert not stale.exists()
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    assert timings["training_s"] > 1.0 and timings["total_s"] >= timings["training_s"], timings
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_a_bake_calibrates_its_energy_and_records_it(tmp_path):
    """The energy calibration (training/calibration.py) runs after training: the manifest records the
    scale it applied, within the clamp, when asked (--calibrate); the default records none, and the
    resume hint keeps the choice."""
    from neumat.training import calibration

    mat = write_material(tmp_path, resolution=8)
    lines: list[str] = []
    done = bake(mat, tmp_path / "cal.neumat", tiny(iterations=8, calibrate=True), progress=False, log=lines.append)
    info = json.loads((done.asset / "manifest.json").read_text())["training"]["calibration"]
    assert len(info["scale"]) == 3 and info["queries"] == calibration.CALIBRATION_QUERIES
    lo, hi = calibration.SCALE_RANGE
    assert all(lo <= s <= hi for s in info["scale"]), info
    assert any(line.startswith("energy calibration: the network's output x ") for line in lines), lines
    plain = bake(mat, tmp_path / "plain.neumat", tiny(iterations=8), progress=False)
    assert json.loads((plain.asset / "manifest.json").read_text())["training"]["calibration"] is None
    hint = bake_mod.resume_command(mat, tmp_path / "plain.neumat", BakeSettings(resolution=8, calibrate=True))
    assert hint.endswith("--calibrate --resume"), hint
