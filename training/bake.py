"""The bake job behind `neumat bake`: a material graph in, a neural asset out.

    validate the material -> parameters and pyramid -> reference on the Vulkan device ->
    train (trainer.py: encoder phase, then latents fine-tuned) with periodic checkpoints ->
    bake report (training/report.py: held-out error, flat-patch FLIP) -> asset (training/export.py)

Output. The asset is `<OUT>` when OUT ends in `.neumat`, else `<OUT>/<material name>.neumat`
(folders that do not exist yet are made once every input is checked); OUT defaults to the current
directory, so `neumat bake brass.toml` writes `./brass.neumat/` (the
bundled pre-baked assets live in assets/neural/, written by tools/bake_all.py). The asset is written
under a temporary name and renamed into place (export.py), so no half-written asset ever carries its
name; an earlier asset there is replaced only when the new one is complete. The bake report (images,
report.json, report.md) goes into `<asset>/report/`, moved in by one rename after the asset.

Checkpoints. `<asset>.checkpoint.pt` beside the asset (e.g. `./brass.neumat.checkpoint.pt`) holds
the model, the optimiser, the step, the RNG states, the training config, the material's source
hash and the bake settings: tensors and plain values only, loaded with torch.load(weights_only=True),
so a checkpoint from elsewhere cannot run code. It is written atomically every `checkpoint_every` steps (or
`checkpoint_seconds`), on Ctrl-C, and once training ends (so an interrupted report or export
resumes without training again); it is deleted once the asset is written. `resume=True` continues
from it, and refuses a checkpoint of another material (source hash) or other settings.

Ctrl-C. The first one finishes the current step, writes the checkpoint and raises BakeInterrupted
(the CLI prints how to resume and exits 130); a second one stops at once, keeping the last
checkpoint written. Batches are a pure function of (seed, step) (data.py), so a resumed bake with
`iterations` continues exactly as an uninterrupted one would.

Time budget. With `time_budget` (minutes of training) instead of `iterations`, the iteration count
is re-planned every `replan_every` steps from the measured speed (half encoder phase, half
fine-tuning, as with iterations); the learning rate and mollification schedules follow the plan.
Such a bake is not reproducible step for step: its length depends on the machine's speed.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import shlex
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from neumat.renderer.core.atomic_files import atomic_output, remove_stale_temporaries, temporary_dir, temporary_file
from neumat.renderer.core import interrupts
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural.asset import ASSET_SUFFIX, MANIFEST_NAME
from neumat.training.settings import (AUTO_NETWORK, DEFAULT_EVALUATOR, DEFAULT_ITERATIONS, DEFAULT_RESOLUTION,
                                      MAX_BATCH, MIN_RESOLUTION, NETWORK_CHOICES, BakeSettings, parse_network)
from neumat.training.network_choice import resolve_network
from neumat.training.trainer import TrainConfig, Trainer

ENCODER_SHARE = 0.5
CHECKPOINT_SUFFIX = ".checkpoint.pt"
CHECKPOINT_VERSION = 2  # 2: loadable with weights_only (trainer.CHECKPOINT_FORMAT 2)
REPORT_DIR = "report"
STOP_GRACE_SECONDS = 120.0  # after the first Ctrl-C: finish the step, write the checkpoint (a slow step: seconds)
# Settings a resumed bake must share with its checkpoint (iteration counts are compared separately:
# a time-budget bake re-plans them).
_MATCHING_FIELDS = ("evaluator", "directions", "resolution", "use_encoder", "use_frames", "batch_size", "target_queries",
                    "lr_start", "lr_end", "mollify_degrees", "mollify_fraction", "sampler_fraction", "level_rate",
                    "below_horizon", "peak_fraction", "lr_scale_latents", "lr_scale_frames",
                    "lr_scale_first", "lr_restart", "lobe_energy", "lobe_energy_fraction", "lobe_energy_alone", "lobe_energy_f0", "seed")


@dataclass
class BakeResult:
    asset: Path
    report: dict | None
    timings: dict
    training: dict
    steps: int


class BakeInterrupted(Exception):
    """Ctrl-C during a bake, after the checkpoint was written (or kept)."""

    def __init__(self, checkpoint: Path | None, step: int, total: int, resume_hint: str) -> None:
        self.checkpoint, self.step, self.total = checkpoint, step, total
        where = f"checkpoint {checkpoint} (step {step} of {total})" if checkpoint else "no checkpoint was written"
        super().__init__(f"interrupted; {where}. {resume_hint}")


def torch_threads(cores: int | None = None) -> int:
    """Threads for torch on `cores` CPU cores (default: every core this process may run on; a
    batch bake on a shared node gets its share, training/batch.py): one core is left to the
    reference evaluations, which run on the Vulkan device (lavapipe: the CPU) in a background
    thread. More threads than free cores make torch's OpenMP barriers spin against the other work:
    on a busy 2-core machine a 16k-sample step took 0.2-1.8 s with 2 threads and 0.08 s with 1."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def default_resolution(material_resolution: int) -> int:
    return min(material_resolution, DEFAULT_RESOLUTION)


def asset_location(output: str | Path | None, name: str) -> Path:
    """The asset directory for OUT (module doc)."""
    out = Path(output) if output is not None else Path.cwd()
    return out if out.suffix == ASSET_SUFFIX else out / f"{name}{ASSET_SUFFIX}"


def checkpoint_location(asset: Path) -> Path:
    return asset.with_name(asset.name + CHECKPOINT_SUFFIX)


def _check_writable(asset: Path) -> None:
    """The asset can be written: its folder exists and is writable, or is missing below a writable
    folder (bake creates it, like compare's -o), and nothing but an asset is in the way."""
    existing = asset.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NeumatError(f"{asset}: '{existing}' is not a folder; choose another output with -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NeumatError(f"{asset}: the output folder '{existing}' is not writable")
    if asset.exists() or asset.is_symlink():
        if not asset.is_dir() or asset.is_symlink() or not ((asset / MANIFEST_NAME).is_file() or not any(asset.iterdir())):
            raise NeumatError(f"{asset}: exists and is not a neural asset (no {MANIFEST_NAME}); "
                              "choose another output with -o")
    if existing == asset.parent:
        try:
            temporary_file(asset, suffix=".probe").unlink()
        except OSError as e:
            raise NeumatError(f"{asset}: cannot write into '{existing}' ({e.strerror})") from None


def resolve_torch_device(name: str | None) -> str:
    """The torch device for training: `name` (cpu, cuda or cuda:N) checked against this torch
    build and machine, or cuda when torch sees one, else cpu."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if torch.version.cuda is None:
            raise NeumatError(f"--torch-device {name}: this torch ({torch.__version__}) is built without CUDA; "
                              "use --torch-device cpu, or install a CUDA build of torch")
        if not torch.cuda.is_available():
            raise NeumatError(f"--torch-device {name}: torch sees no CUDA device (driver missing or "
                              "CUDA_VISIBLE_DEVICES empty); use --torch-device cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise NeumatError(f"--torch-device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        return name
    raise NeumatError(f"--torch-device: unknown device '{name}' (use cpu, cuda or cuda:N)")


def train_config(settings: BakeSettings, resolution: int) -> TrainConfig:
    """The TrainConfig of a bake (NeumatError on bad settings). An "auto" network, resolved per material
    by bake() (training/network_choice.py), stands for DEFAULT_EVALUATOR here: batches check their
    shared settings with it."""
    evaluator = DEFAULT_EVALUATOR if settings.evaluator == AUTO_NETWORK else settings.evaluator
    try:
        parse_network(evaluator)
    except ValueError:
        raise NeumatError(f"unknown network size '{settings.evaluator}' (choose from {', '.join(NETWORK_CHOICES)})") from None
    if settings.iterations is not None and settings.time_budget is not None:
        raise NeumatError("give either iterations or a time budget, not both")
    if settings.iterations is not None and settings.iterations < 1:
        raise NeumatError(f"iterations must be >= 1, got {settings.iterations}")
    if settings.time_budget is not None and not (settings.time_budget > 0 and math.isfinite(settings.time_budget)):
        raise NeumatError(f"the time budget must be a positive number of minutes, got {settings.time_budget}")
    if not 64 <= settings.batch_size <= MAX_BATCH:
        raise NeumatError(f"the batch size must be in [64, {MAX_BATCH}], got {settings.batch_size}")
    if not 0 <= settings.seed < 2**32:
        raise NeumatError(f"the seed must be in [0, 2^32), got {settings.seed}")
    if settings.time_budget is not None:
        total = 100  # a first guess; re-planned from the measured speed
    else:
        total = settings.iterations if settings.iterations is not None else DEFAULT_ITERATIONS
    enc = int(round(ENCODER_SHARE * total)) if settings.use_encoder else 0
    if settings.use_encoder and total >= 2:
        enc = min(max(enc, 1), total - 1)
    try:
        return TrainConfig(evaluator=evaluator, resolution=resolution, use_encoder=settings.use_encoder,
                           use_frames=settings.use_frames, encoder_iterations=enc, finetune_iterations=total - enc,
                           batch_size=settings.batch_size, seed=settings.seed, **settings.train_overrides)
    except (ValueError, TypeError) as e:
        raise NeumatError(str(e)) from None


def _resolution(settings: BakeSettings, material) -> int:
    res = settings.resolution if settings.resolution is not None else default_resolution(material.resolution)
    if not isinstance(res, int) or res < MIN_RESOLUTION or res & (res - 1) or res > 8192:
        raise NeumatError(f"--resolution must be a power of two in [{MIN_RESOLUTION}, 8192], got {res}")
    return res


def _save_checkpoint(path: Path, trainer: Trainer, meta: dict) -> int:
    """Atomically (a temporary file beside `path`, then a rename); returns the step saved."""
    state = {"checkpoint_version": CHECKPOINT_VERSION, "bake": meta, "trainer": trainer.state_dict()}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return trainer.step


def _load_checkpoint(path: Path) -> dict:
    """The checkpoint's state. weights_only: tensors and plain values only, so a crafted file cannot
    run code (a full unpickler would call whatever the file names)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file, or one holding objects other than tensors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise NeumatError(f"{path}: not a readable bake checkpoint ({type(e).__name__}: {reason}); "
                          "delete it and bake without --resume") from None
    if not _is_checkpoint(state):
        raise NeumatError(f"{path}: not a bake checkpoint of this neumat version; delete it and bake without --resume")
    return state


def _is_checkpoint(state: object) -> bool:
    """The structure resume reads before the trainer checks the tensors (a foreign file fails here)."""
    if not (isinstance(state, dict) and state.get("checkpoint_version") == CHECKPOINT_VERSION):
        return False
    meta, trainer = state.get("bake"), state.get("trainer")
    return (isinstance(meta, dict) and all(isinstance(meta.get(k), str) for k in ("material", "source_hash"))
            and isinstance(meta.get("training_s"), float) and isinstance(trainer, dict)
            and isinstance(trainer.get("config"), dict) and isinstance(trainer.get("step"), int))


def _check_resumable(path: Path, state: dict, material, config: TrainConfig, settings: BakeSettings) -> None:
    meta = state["bake"]
    if meta["source_hash"] != material.source_hash:
        raise NeumatError(f"{path}: the checkpoint belongs to another version of material '{meta['material']}' "
                          f"(source hash {meta['source_hash'][:12]}..., this file {material.source_hash[:12]}...); "
                          "bake without --resume to start afresh")
    saved = state["trainer"]["config"]
    diffs = [f"{k} {saved.get(k)!r} -> {getattr(config, k)!r}" for k in _MATCHING_FIELDS
             if saved.get(k) != getattr(config, k)]
    if (meta.get("time_budget") is None) != (settings.time_budget is None) or \
            (settings.time_budget is not None and meta.get("time_budget") != settings.time_budget):
        diffs.append(f"time budget {meta.get('time_budget')!r} -> {settings.time_budget!r} minutes")
    elif settings.time_budget is None:
        for k in ("encoder_iterations", "finetune_iterations"):
            if saved.get(k) != getattr(config, k):
                diffs.append(f"{k} {saved.get(k)!r} -> {getattr(config, k)!r}")
    if diffs:
        raise NeumatError(f"{path}: the checkpoint was made with other settings ({'; '.join(diffs)}); "
                          "resume with the same options, or bake without --resume to start afresh")


class InterruptFlag:
    """Turns the first SIGINT into a flag checked at step boundaries; the second raises at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous = None

    def __enter__(self) -> "InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            interrupts.acknowledge()
            raise KeyboardInterrupt
        interrupts.acknowledge(STOP_GRACE_SECONDS)  # the step and the checkpoint get time to finish
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _replan(trainer: Trainer, budget_s: float, spent_s: float, seconds_per_step: float) -> None:
    """Sets the config's iteration counts so training ends when the budget is spent."""
    cfg = trainer.config
    remaining = max(0, int((budget_s - spent_s) / max(seconds_per_step, 1e-6)))
    total = max(trainer.step + remaining, trainer.step + 1 if budget_s > spent_s else trainer.step, 1)
    if trainer.in_encoder_phase:
        enc = max(trainer.step + 1, int(round(ENCODER_SHARE * total)))
        cfg.encoder_iterations, cfg.finetune_iterations = enc, max(1, total - enc)
    else:
        cfg.finetune_iterations = max(trainer.step - cfg.encoder_steps, total - cfg.encoder_steps)


def resume_command(material: Path, asset: Path, settings: BakeSettings, device: str | None = None,
                   torch_device: str | None = None) -> str | None:
    """The `neumat bake ... --resume` command line that continues a bake made with `settings`
    (resume refuses other settings), or None when settings the command has no options for differ
    from their defaults (experiments through the API)."""
    d = BakeSettings()
    if (settings.use_encoder, settings.use_frames, settings.train_overrides) != (d.use_encoder, d.use_frames,
                                                                                 d.train_overrides):
        return None
    args = ["neumat", "bake", str(material), "-o", str(asset)]
    options = [("--network", settings.evaluator, d.evaluator), ("--resolution", settings.resolution, None),
               ("--iterations", settings.iterations, None), ("--time-budget", settings.time_budget, None),
               ("--seed", settings.seed, d.seed), ("--batch-size", settings.batch_size, d.batch_size),
               ("--device", device, None), ("--torch-device", torch_device, None)]
    for flag, value, default in options:
        if value != default:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]  # repr: exact floats
    if not settings.report:
        args.append("--no-report")
    if settings.calibrate:
        args.append("--calibrate")
    return shlex.join([*args, "--resume"])


def bake(material_path: str | Path, output: str | Path | None = None, settings: BakeSettings | None = None,
         resume: bool = False, device: str | None = None, torch_device: str | None = None,
         progress: bool = True, callback: Callable[[dict], None] | None = None,
         log: Callable[[str], None] = print, cores: int | None = None) -> BakeResult:
    """Bakes one material (module doc). `callback(record)` runs after every training step (it may
    raise KeyboardInterrupt, as Ctrl-C does). `cores`: the CPU cores the bake may use (torch_threads).
    Raises NeumatError on bad input before anything is written, BakeInterrupted after Ctrl-C."""
    from neumat.renderer.core.device import create_device
    from neumat.renderer.materials.graph import build_pyramid, evaluate_parameters, load_material
    from neumat.renderer.materials.reference import ReferenceMaterial
    from neumat.training.export import save_asset

    settings = settings or BakeSettings()
    t_start = time.perf_counter()
    material = load_material(material_path)  # NeumatError names the file and key
    resolution = _resolution(settings, material)
    params = evaluate_parameters(material, resolution)  # range-checks node outputs: NeumatError
    settings, choice = resolve_network(settings, material, params)
    config = train_config(settings, resolution)
    asset = asset_location(output, material.name)
    _check_writable(asset)
    train_device = resolve_torch_device(torch_device)
    ckpt = checkpoint_location(asset)
    state = None
    if resume:
        if not ckpt.is_file():
            raise NeumatError(f"--resume: no checkpoint at {ckpt}; bake without --resume to start afresh")
        state = _load_checkpoint(ckpt)
        _check_resumable(ckpt, state, material, config, settings)
    elif ckpt.exists():
        log(f"note: {ckpt} holds an interrupted bake; starting afresh (pass --resume to continue it instead)")
    if choice is not None:
        log(f"network: {choice.reason}")
    pyramid = build_pyramid(material, params)
    vk = create_device(device)
    reference = ReferenceMaterial(vk, material.layout, pyramid, name=material.name)
    if train_device == "cpu":
        torch.set_num_threads(torch_threads(cores))
    trainer = Trainer(config, reference, train_device)
    spent_s = 0.0  # training seconds of earlier runs of this bake
    earlier_s = 0.0  # wall seconds of earlier runs (setup, training, interrupted reports)
    resumed_from = 0
    if state is not None:
        try:
            trainer.load_state_dict(state["trainer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # shapes or fields of another bake
            raise NeumatError(f"{ckpt}: not a readable bake checkpoint ({type(e).__name__}: {e}); "
                              "delete it and bake without --resume") from None
        if settings.time_budget is not None:  # keep the checkpoint's plan
            for k in ("encoder_iterations", "finetune_iterations"):
                setattr(trainer.config, k, state["trainer"]["config"][k])
        spent_s = state["bake"]["training_s"]
        earlier_s = max(float(state["bake"].get("elapsed_s", spent_s)), spent_s)
        resumed_from = trainer.step
        log(f"resuming {material.name} from step {trainer.step} of {trainer.config.total_iterations} ({ckpt})")
    # Every input is checked: from here on files are written. A missing output folder is made now.
    try:
        asset.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NeumatError(f"{asset}: cannot make the output folder '{asset.parent}' ({e.strerror})") from None
    for target in (asset, ckpt):
        remove_stale_temporaries(target)  # of earlier runs killed outright (SIGKILL)
    t_setup = time.perf_counter() - t_start
    budget_s = settings.time_budget * 60.0 if settings.time_budget is not None else None

    def meta(training_s: float) -> dict:
        return {"material": material.name, "source_hash": material.source_hash, "material_file": str(material.path),
                "time_budget": settings.time_budget, "training_s": training_s, "asset": str(asset),
                "elapsed_s": earlier_s + time.perf_counter() - t_start}

    command = resume_command(material.path, asset, settings, device, torch_device)
    resume_hint = (f"Resume with: {command}" if command
                   else "Resume with the same settings and --resume (resume=True in the API).")
    bar = None
    run_start = time.perf_counter()
    last_ckpt_time = run_start
    loss_ema = None
    step_times: list[float] = []
    chunk_walls: list[tuple[float, int]] = []  # (seconds, steps) of each run() call
    flag = InterruptFlag()
    at_boundary = [False]  # the interrupt came between two steps: the trainer is consistent
    ckpt_step = resumed_from if state is not None else None  # the step of this bake's checkpoint file

    def on_step(record: dict) -> None:
        nonlocal loss_ema
        loss_ema = record["loss"] if loss_ema is None else 0.95 * loss_ema + 0.05 * record["loss"]
        step_times.append(record["seconds"])
        if bar is not None:
            bar.total = trainer.config.total_iterations
            bar.set_postfix_str(f"phase {record['phase']} loss {loss_ema:.4f} lr {record['lr']:.1e}", refresh=False)
            bar.update(1)
        if callback is not None:
            try:
                callback(record)
            except KeyboardInterrupt:
                at_boundary[0] = True
                raise
        if flag.set:
            at_boundary[0] = True
            raise KeyboardInterrupt

    try:
        with flag:
            if progress and trainer.step < trainer.config.total_iterations:
                from tqdm import tqdm
                bar = tqdm(total=trainer.config.total_iterations, initial=trainer.step, unit="it",
                           desc=f"bake {material.name}", dynamic_ncols=True)
            try:
                while trainer.step < trainer.config.total_iterations:
                    if budget_s is not None:
                        spent = spent_s + time.perf_counter() - run_start
                        if step_times:
                            # Seconds per step: wall time over the chunks since the first one (which
                            # pays for compiling kernels), else the median step of the first chunk.
                            if len(chunk_walls) > 1:
                                per_step = sum(w for w, _ in chunk_walls[1:]) / sum(n for _, n in chunk_walls[1:])
                            else:
                                per_step = sorted(step_times)[len(step_times) // 2] * 1.1
                            _replan(trainer, budget_s, spent, per_step)
                        if spent >= budget_s and trainer.step > 0:
                            _replan(trainer, budget_s, spent, math.inf)
                            if trainer.step >= trainer.config.total_iterations:
                                break
                        chunk = settings.replan_every if step_times else 10
                    else:
                        chunk = settings.checkpoint_every
                    until = min(trainer.step + chunk, trainer.config.total_iterations)
                    chunk_start, chunk_first = time.perf_counter(), trainer.step
                    trainer.run(until=until, callback=on_step)
                    now = time.perf_counter()
                    chunk_walls.append((now - chunk_start, max(1, trainer.step - chunk_first)))
                    if trainer.step % settings.checkpoint_every == 0 or now - last_ckpt_time > settings.checkpoint_seconds:
                        ckpt_step = _save_checkpoint(ckpt, trainer, meta(spent_s + now - run_start))
                        last_ckpt_time = now
                if trainer.in_encoder_phase:  # all encoder phase (no fine-tuning): still a pyramid
                    trainer.fill_latents_from_encoder()
            finally:
                if bar is not None:
                    bar.close()
            training_s = spent_s + time.perf_counter() - run_start
            ckpt_step = _save_checkpoint(ckpt, trainer, meta(training_s))
    except KeyboardInterrupt:
        training_s = spent_s + time.perf_counter() - run_start
        if at_boundary[0] and (ckpt_step is None or trainer.step > ckpt_step):
            try:
                ckpt_step = _save_checkpoint(ckpt, trainer, meta(training_s))
            except KeyboardInterrupt:
                pass
        kept = ckpt if ckpt_step is not None and ckpt.is_file() else None
        raise BakeInterrupted(kept, ckpt_step if kept else 0, trainer.config.total_iterations, resume_hint) from None

    if trainer.timing["steps"]:
        log(f"trained {material.name}: {trainer.speed_summary()}")
    model = trainer.model.to("cpu").eval()
    calibration = None
    if settings.calibrate:
        from neumat.training.calibration import calibrate
        from neumat.training.report import reference_target

        log(f"calibrating {material.name}'s energy: the log-L1 loss's bias on the reference's targets")
        walks = trainer.config.target_queries  # walks per training target
        calibration = calibrate(model, lambda *q: reference_target(reference, *q, n_walks=walks), seed=settings.seed)
        log("energy calibration: the network's output x " + " / ".join(f"{v:.3f}" for v in calibration["scale"])
            + " (R / G / B)" + (" (clamped)" if calibration["clamped"] else ""))
    training = {**asdict(trainer.config), "iterations_run": trainer.step, "resumed_from_step": resumed_from,
                "time_budget_min": settings.time_budget, "vulkan_device": vk.info.adapter_name,
                "torch_device": train_device, "torch_threads": torch.get_num_threads(),
                "final_loss": trainer.history[-1]["loss"] if trainer.history else None,
                "watchdog": trainer.watchdog.summary(), "calibration": calibration,
                "network_choice": choice.reason if choice is not None else "given"}
    timings = {"setup_s": t_setup, "training_s": training_s,
               "seconds_per_step": training_s / max(1, trainer.step)}
    report = None
    report_tmp = None
    try:
        if settings.report:
            from neumat.training.report import bake_report
            t0 = time.perf_counter()
            report_tmp = temporary_dir(asset)
            report = bake_report(model, reference, material, report_tmp, seed=settings.seed,
                                 n_heldout=settings.heldout_queries, timings=dict(timings), training=training,
                                 log=log)
            timings["report_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = report["metrics"] if report is not None else {}
        timings["total_s"] = earlier_s + time.perf_counter() - t_start
        saved = save_asset(asset, model, material, training, metrics, timings)
        if report_tmp is not None:
            os.rename(report_tmp, saved / REPORT_DIR)
            report_tmp = None
            from neumat.training.report import add_asset_size
            report = add_asset_size(report, saved / REPORT_DIR, saved)
        timings["export_s"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        raise BakeInterrupted(ckpt, trainer.step, trainer.config.total_iterations,
                              "Training had finished; " + resume_hint) from None
    finally:
        if report_tmp is not None:
            shutil.rmtree(report_tmp, ignore_errors=True)
    ckpt.unlink(missing_ok=True)
    timings["total_s"] = earlier_s + time.perf_counter() - t_start
    return BakeResult(saved, report, timings, training, trainer.step)
