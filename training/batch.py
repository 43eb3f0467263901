"""Batch bakes: several materials in one command, one after another in this process or as Ray tasks
on a cluster (`neumat bake A.toml B.toml --cluster local|auto|ADDRESS`; docs/cluster.md).

    plan_batch (material files -> assets; a file that does not load fails alone)
    -> run_serial | run_on_ray (each bake: training/bake.py's bake(), unchanged)
    -> outcomes -> summary_table, exit_code

Every bake of a batch is the single bake of training/bake.py: the same settings, assets,
checkpoints and report. What a batch adds:

- Shared storage. A bake writes its checkpoints and its asset beside each other in the output
  folder, from whichever node runs it. On a real cluster that folder, and the material files, must
  be shared storage mounted at the same path on every node (NFS, a cluster file system), so that a
  bake retried on another node finds its checkpoint; paths are made absolute before they travel.
- Faults. A Ray task whose worker process dies (killed, out of memory, node lost) is retried up to
  `max_retries` times (Ray's own retry of system failures); the retry resumes from the bake's last
  checkpoint. A material that fails (a NeumatError: validation, an output in the way; or an
  exception in the bake) fails alone with its message and is not retried; the rest go on.
- Ctrl-C. The first cancels the batch: queued bakes never start, running ones get SIGINT (Ray's
  cancel), which a bake treats as its own Ctrl-C: it finishes the step and writes its checkpoint.
  A second Ctrl-C kills them at once, keeping the last checkpoint each wrote (checkpoints are
  written atomically). Either way `--resume` continues every unfinished bake.
- Resume. In a batch, `resume=True` resumes the bakes that have a checkpoint and starts the others
  afresh (a batch interrupted half-way has both); a retried task always resumes.
- Progress. Each Ray task reports its state, step, loss and ETA to a ProgressBoard (a Ray actor),
  which the driver draws as one line per material; serial bakes show bake()'s own progress bar.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from neumat.renderer.core.errors import NeumatError

if TYPE_CHECKING:
    from neumat.training.bake import BakeSettings

DONE, FAILED, INTERRUPTED, NOT_STARTED = "done", "failed", "interrupted", "not started"
QUEUED, RUNNING = "queued", "running"
DEFAULT_MAX_RETRIES = 3  # worker deaths per bake before it fails
INSTALL_HINT = "pip install 'neumat[cluster]' (in a checkout: pip install -e '.[cluster]')"
# Tests only: "NAME:STEP" makes the first attempt of NAME's bake SIGKILL its own worker at STEP,
# as a node or the OOM killer would (tests/test_batch_bake.py).
KILL_HOOK_ENV = "NEUMAT_TEST_KILL_AT"


@dataclass
class BatchJob:
    """One material of a batch, with absolute paths (they travel to other nodes)."""

    material: Path
    name: str
    asset: Path


@dataclass
class BatchOptions:
    """How every bake of a batch runs (bake()'s arguments besides the material and output)."""

    settings: BakeSettings | None = None  # default: BakeSettings()
    resume: bool = False
    device: str | None = None
    torch_device: str | None = None
    cores: int | None = None  # CPU cores per bake (torch threads); None: the whole machine
    progress: bool = True


@dataclass
class Outcome:
    """How one material of a batch ended."""

    name: str
    material: Path
    state: str  # DONE, FAILED, INTERRUPTED, NOT_STARTED
    asset: Path | None = None
    node: str = ""
    seconds: float | None = None  # the whole bake, earlier interrupted runs included
    started: float | None = None  # time.time() when this attempt began and ended
    ended: float | None = None
    steps: int = 0
    resumed_from: int = 0
    attempts: int = 0
    metrics: dict = field(default_factory=dict)
    error: str = ""


def plan_batch(materials: list[str | Path], output: str | Path | None) -> tuple[list[BatchJob], list[Outcome]]:
    """The jobs of a batch, and the materials that fail before baking: a file that does not load
    (its message) or a second material writing the same asset. With several materials `output` is
    a folder (NeumatError when it names an asset)."""
    from neumat.renderer.materials.graph import load_material
    from neumat.renderer.neural.asset import ASSET_SUFFIX
    from neumat.training.bake import asset_location

    if len(materials) > 1 and output is not None and Path(output).suffix == ASSET_SUFFIX:
        raise NeumatError(f"-o {output}: with several materials -o is the folder their assets go into")
    jobs: list[BatchJob] = []
    failed: list[Outcome] = []
    owners: dict[Path, Path] = {}
    for path in (Path(m).absolute() for m in materials):
        try:
            name = load_material(path).name
        except NeumatError as e:
            failed.append(Outcome(path.stem, path, FAILED, error=str(e)))
            continue
        asset = asset_location(output, name).absolute()
        if asset in owners:
            failed.append(Outcome(name, path, FAILED, error=f"{path}: its asset {asset} is also {owners[asset]}'s "
                                                            "(two materials of one name); rename one"))
            continue
        owners[asset] = path
        jobs.append(BatchJob(path, name, asset))
    return jobs, failed


class ProgressBoard:
    """What every bake of a batch last reported, by material name: a Ray actor that the tasks
    call and the driver reads."""

    def __init__(self, names: list[str]) -> None:
        self.rows = {n: {"state": QUEUED, "attempt": 0, "node": "", "step": 0, "total": None, "loss": None,
                         "eta": None, "note": ""} for n in names}

    def start(self, name: str, node: str) -> int:
        """A bake (or its retry) starts on `node`; returns its attempt number."""
        row = self.rows[name]
        row.update(state=RUNNING, node=node, attempt=row["attempt"] + 1, eta=None)
        return row["attempt"]

    def update(self, name: str, step: int, total: int | None, loss: float | None, eta: float | None) -> None:
        self.rows[name].update(step=step, total=total, loss=loss, eta=eta)

    def note(self, name: str, text: str) -> None:
        self.rows[name]["note"] = text

    def finish(self, name: str, state: str, note: str = "") -> None:
        self.rows[name].update(state=state, note=note, eta=None)

    def snapshot(self) -> dict:
        return self.rows


class _Board:
    """Calls a ProgressBoard actor without waiting (a slow driver never slows a bake), unless asked."""

    def __init__(self, actor) -> None:
        self.actor = actor

    def __call__(self, method: str, *args, wait: bool = False):
        import ray

        ref = getattr(self.actor, method).remote(*args)
        return ray.get(ref) if wait else None


class _StepReporter:
    """bake()'s step callback: smoothed loss and ETA to the board (at most once a second), and the
    test hook KILL_HOOK_ENV."""

    def __init__(self, board: _Board, name: str, total: int | None, kill_at: int | None) -> None:
        self.board, self.name, self.total, self.kill_at = board, name, total, kill_at
        self.loss = None
        self.first: tuple[float, int] | None = None  # (time, step) of this run's first step
        self.sent = 0.0

    def __call__(self, record: dict) -> None:
        step = record["step"]
        if step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        now = time.monotonic()
        self.loss = record["loss"] if self.loss is None else 0.95 * self.loss + 0.05 * record["loss"]
        if self.first is None:
            self.first = (now, step)
        if now - self.sent < 1.0 and step != self.total:
            return
        self.sent = now
        eta = None
        if self.total is not None and step > self.first[1]:
            eta = (self.total - step) * (now - self.first[0]) / (step - self.first[1])
        self.board("update", self.name, step, self.total, self.loss, eta)
        if step == self.total:
            self.board("note", self.name, "training done: bake report, then the asset")


def _kill_step(name: str) -> int | None:
    spec = os.environ.get(KILL_HOOK_ENV, "")
    target, _, step = spec.rpartition(":")
    return int(step) if target == name and step.isdigit() else None


def bake_job(job: BatchJob, options: BatchOptions, board=None) -> Outcome:
    """Bakes one material of a batch (a Ray task on a cluster) and says how it ended; bad input
    and errors are an outcome, not an exception, so that Ray retries only dead workers."""
    from neumat.training.bake import DEFAULT_ITERATIONS, BakeInterrupted, BakeSettings, bake, checkpoint_location

    settings = options.settings or BakeSettings()
    node = socket.gethostname()
    client = _Board(board) if board is not None else None
    attempt = client("start", job.name, node, wait=True) if client else 1
    ckpt = checkpoint_location(job.asset)
    resume = ckpt.is_file() and (options.resume or attempt > 1)
    outcome = Outcome(job.name, job.material, FAILED, node=node, attempts=attempt, started=time.time())
    callback = log = None
    if client is not None:
        total = None if settings.time_budget is not None else (settings.iterations or DEFAULT_ITERATIONS)
        callback = _StepReporter(client, job.name, total, _kill_step(job.name) if attempt == 1 else None)

        def log(text: str) -> None:
            client("note", job.name, text)
    try:
        result = bake(job.material, job.asset, settings, resume=resume, device=options.device,
                      torch_device=options.torch_device, progress=client is None and options.progress,
                      callback=callback, log=log or print, cores=options.cores)
    except NeumatError as e:
        outcome.error, outcome.ended = str(e), time.time()
        return outcome
    except BakeInterrupted as e:
        outcome.state, outcome.steps, outcome.error, outcome.ended = INTERRUPTED, e.step, str(e), time.time()
        return outcome
    outcome.state, outcome.asset, outcome.steps, outcome.ended = DONE, result.asset, result.steps, time.time()
    outcome.seconds = result.timings["total_s"]
    outcome.resumed_from = result.training["resumed_from_step"]
    outcome.metrics = result.report["metrics"] if result.report is not None else {}
    return outcome


def run_serial(jobs: list[BatchJob], options: BatchOptions, out: TextIO = sys.stderr) -> list[Outcome]:
    """Bakes one after another in this process, each with bake()'s progress bar; the first Ctrl-C
    stops the bake in progress at a checkpoint (bake() does) and the batch with it."""
    outcomes: list[Outcome] = []
    for i, job in enumerate(jobs):
        print(f"[{i + 1}/{len(jobs)}] {job.name} ({job.material})", file=out, flush=True)
        try:
            outcome = bake_job(job, options)
        except KeyboardInterrupt:  # outside the training loop (imports, setup, report): no new checkpoint
            outcome = Outcome(job.name, job.material, INTERRUPTED, error="interrupted")
        outcomes.append(outcome)
        if outcome.state == FAILED:
            print(f"{job.name}: failed: {outcome.error}", file=out, flush=True)
        if outcome.state == INTERRUPTED:
            outcomes += [Outcome(j.name, j.material, NOT_STARTED) for j in jobs[i + 1:]]
            break
    return outcomes


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Something listens at a cluster's HOST:PORT: Ray itself retries an address where nothing
    answers for minutes, printing warnings."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise NeumatError(f"--cluster {address}: not local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise NeumatError(f"--cluster {address}: nothing answers at {host}:{port} ({e.strerror or e}); start the "
                          "cluster with `ray start --head` there (docs/cluster.md) or use --cluster local") from None


def connect(cluster: str) -> bool:
    """Connects this process to Ray: `local` starts an instance on this machine (all its cores),
    `auto` joins the cluster `ray start` made here, anything else is an address
    (ray://head:10001 through Ray Client, or head:6379). Returns whether it connected (False: this
    process was connected already, e.g. by a test). NeumatError without Ray or without a cluster."""
    try:
        import ray
    except ImportError:
        raise NeumatError(f"--cluster needs Ray, an optional extra: {INSTALL_HINT}") from None
    if ray.is_initialized():
        return False
    if cluster not in ("local", "auto"):
        _check_reachable(cluster)
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}  # progress comes through the board
    try:
        if cluster == "local":
            ray.init(address="local", include_dashboard=False, **quiet)
        elif cluster.startswith("ray://"):
            ray.init(address=cluster, logging_level=logging.ERROR)
        else:
            ray.init(address=cluster, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        auth = ("; clusters of Ray 2.60 authenticate by token: set RAY_AUTH_MODE=token and give this "
                "machine the head node's ~/.ray/auth_token" if not os.environ.get("RAY_AUTH_MODE") else "")
        raise NeumatError(f"--cluster {cluster}: cannot connect to Ray ({first}){auth}; docs/cluster.md") from None
    return True


def run_on_ray(jobs: list[BatchJob], options: BatchOptions, cpus_per_bake: float = 1, gpus_per_bake: float = 0,
               max_retries: int = DEFAULT_MAX_RETRIES, out: TextIO = sys.stderr, poll_s: float = 1.0) -> list[Outcome]:
    """Bakes every job as a Ray task on the connected cluster (module doc: faults, Ctrl-C) while
    drawing the board; returns the outcomes in the jobs' order."""
    import ray
    from ray.exceptions import RayError, TaskCancelledError

    from neumat.training.bake import InterruptFlag

    names = [j.name for j in jobs]
    board = ray.remote(num_cpus=0)(ProgressBoard).remote(names)
    client = _Board(board)
    task = ray.remote(bake_job).options(num_cpus=cpus_per_bake, num_gpus=gpus_per_bake, max_retries=max_retries)
    options = replace(options, cores=max(1, math.floor(cpus_per_bake)) if options.cores is None else options.cores)
    refs = {task.remote(job, options, board): job for job in jobs}
    outcomes: dict[str, Outcome] = {}
    printer = ProgressPrinter(names, out) if options.progress else None
    cancelled = forced = False

    def collect(ref) -> None:
        job = refs[ref]
        try:
            outcome = ray.get(ref)
        except TaskCancelledError:
            started = ray.get(board.snapshot.remote())[job.name]["attempt"] > 0
            outcome = Outcome(job.name, job.material, INTERRUPTED if started else NOT_STARTED)
        except RayError as e:  # the worker died more than max_retries times, or the bake raised
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            outcome = Outcome(job.name, job.material, FAILED, error=lines[-1] if lines else type(e).__name__)
        if outcome.state == INTERRUPTED and forced:
            outcome.error = "killed by the second Ctrl-C"
        outcomes[job.name] = outcome
        client("finish", job.name, outcome.state, outcome.error.splitlines()[0] if outcome.error else "")

    pending = list(refs)
    with InterruptFlag() as flag:
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=poll_s)
                for ref in ready:
                    collect(ref)
                if flag.set and not cancelled:  # the first Ctrl-C: every bake checkpoints and stops
                    cancelled = True
                    for ref in pending:
                        ray.cancel(ref)
                if printer is not None:
                    printer.draw(ray.get(board.snapshot.remote()))
        except KeyboardInterrupt:  # the second Ctrl-C: kill them, their last checkpoints stay
            forced = True
            for ref in pending:
                ray.cancel(ref, force=True)
            ready, lost = ray.wait(pending, num_returns=len(pending), timeout=10)
            for ref in ready:
                collect(ref)
            for ref in lost:
                job = refs[ref]
                outcomes[job.name] = Outcome(job.name, job.material, INTERRUPTED, error="killed by the second Ctrl-C")
    if printer is not None:
        printer.draw(ray.get(board.snapshot.remote()))
    return [outcomes[j.name] for j in jobs]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class ProgressPrinter:
    """Draws the board as one line per material: redrawn in place on a terminal; elsewhere (a log
    file, a pipe) a line when a bake changes state and the running ones every `every_s` seconds."""

    def __init__(self, names: list[str], out: TextIO, every_s: float = 30.0) -> None:
        self.names, self.out, self.every_s = names, out, every_s
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.width = max(len(n) for n in names) if names else 0
        self.drawn = 0
        self.seen: dict[str, tuple] = {}
        self.last_all = time.monotonic()

    def line(self, name: str, row: dict) -> str:
        text = f"{name:<{self.width}}  {row['state']:<11}"
        if row["state"] == RUNNING and not row["step"]:
            text += f" setting up on {row['node']}" + (f" (attempt {row['attempt']})" if row["attempt"] > 1 else "")
        elif row["state"] in (RUNNING, DONE, INTERRUPTED) and row["attempt"]:
            total = f"/{row['total']}" if row["total"] else ""
            text += f" step {row['step']}{total}"
            if row["loss"] is not None:
                text += f"  loss {row['loss']:.4f}"
            if row["state"] == RUNNING and row["eta"] is not None:
                text += f"  ETA {_duration(row['eta'])}"
            text += f"  on {row['node']}"
            if row["attempt"] > 1:
                text += f" (attempt {row['attempt']})"
        if row["note"]:
            text += f"  {row['note']}"
        return text.rstrip()

    def draw(self, rows: dict) -> None:
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            lines = "".join(f"\x1b[2K{self.line(n, rows[n])[:width]}\n" for n in self.names)
            self.out.write(up + lines)
            self.drawn = len(self.names)
        else:
            now = time.monotonic()
            every = now - self.last_all >= self.every_s
            if every:
                self.last_all = now
            for n in self.names:
                row = rows[n]
                key = (row["state"], row["attempt"], row["note"])
                if self.seen.get(n) != key or (every and row["state"] == RUNNING):
                    self.seen[n] = key
                    print(self.line(n, row), file=self.out)
        self.out.flush()


def summary_table(outcomes: list[Outcome]) -> str:
    """The batch's results, one row per material: state, node, time, held-out relative L1,
    flat-patch FLIP (front / specular / grazing), asset; then each failure's message."""
    head = ["material", "state", "node", "time", "held-out", "FLIP front/spec/grazing", "asset"]
    rows = []
    for o in outcomes:
        m = o.metrics or {}
        held = f"{m['heldout_rel_l1']:.4f}" if "heldout_rel_l1" in m else "-"
        flips = "/".join(f"{v:.3f}" for v in m.get("flip", {}).values()) or "-"
        state = o.state if o.attempts <= 1 else f"{o.state} ({o.attempts} attempts)"
        if o.state == DONE and o.resumed_from:
            state += f", resumed at {o.resumed_from}"
        if o.state == INTERRUPTED and o.steps:
            state += f", checkpoint at {o.steps}"
        rows.append([o.name, state, o.node or "-", _duration(o.seconds), held, flips, str(o.asset or "-")])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
    lines = [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)]
    errors = [f"{o.name}: {o.error}" for o in outcomes if o.state == FAILED]
    done = sum(o.state == DONE for o in outcomes)
    lines.append(f"{done} of {len(outcomes)} baked" + (f"; {len(errors)} failed:" if errors else ""))
    return "\n".join(lines + errors)


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every material was baked, 130 when the batch was interrupted, else 1 (one failed)."""
    if any(o.state in (INTERRUPTED, NOT_STARTED) for o in outcomes):
        return 130
    return 0 if all(o.state == DONE for o in outcomes) else 1


def run_batch(materials: list[str | Path], output: str | Path | None, options: BatchOptions,
              cluster: str | None = None, cpus_per_bake: float | None = None, gpus_per_bake: float | None = None,
              max_retries: int = DEFAULT_MAX_RETRIES, out: TextIO = sys.stderr) -> list[Outcome]:
    """Bakes `materials` into `output` (a folder; an asset path for one material): in this process
    one after another without `cluster`, else as Ray tasks (connect). Returns every material's
    outcome, those that failed to load first. NeumatError on bad options (before anything ran)."""
    if cluster is None and (cpus_per_bake is not None or gpus_per_bake is not None):
        raise NeumatError("--cpus-per-bake and --gpus-per-bake need --cluster")
    cpus = 1.0 if cpus_per_bake is None else cpus_per_bake
    gpus = 0.0 if gpus_per_bake is None else gpus_per_bake
    if not (cpus > 0 and math.isfinite(cpus)) or not (gpus >= 0 and math.isfinite(gpus)):
        raise NeumatError(f"--cpus-per-bake must be > 0 and --gpus-per-bake >= 0, got {cpus:g} and {gpus:g}")
    from neumat.training.bake import BakeSettings, train_config
    # The options every bake shares: one message and exit 2 now, rather than the same failure per material.
    settings = options.settings or BakeSettings()
    train_config(settings, settings.resolution or 16)
    jobs, failed = plan_batch(materials, output)
    for o in failed:
        print(f"{o.name}: failed: {o.error}", file=out, flush=True)
    if cluster is None:
        outcomes = failed + run_serial(jobs, options, out)
    else:
        connected = connect(cluster)
        try:
            outcomes = failed + (run_on_ray(jobs, options, cpus, gpus, max_retries, out) if jobs else [])
        finally:
            if connected:
                import ray
                ray.shutdown()
    order = {Path(m).absolute(): i for i, m in reversed(list(enumerate(materials)))}
    return sorted(outcomes, key=lambda o: order.get(o.material, len(order)))
