"""`ray`: the sweep as one Ray Tune experiment, on a running Ray cluster or on one started here.

Each trial is a Tune trial whose function trainable runs the shared worker (`base.worker_command`) as a child
process and forwards its metrics.jsonl to `tune.report`. A child, not a call, because the runner checkpoints on
SIGTERM only in a main thread, and Tune runs trainables in a side thread: the child gets SIGTERM when its actor
dies (PDEATHSIG; Ray's own SIGKILL of an exiting actor's children is turned off), so a stopped trial always
ends "interrupted" with a checkpoint. An interrupted driver exits only once those workers let go of their
trials, so an immediate `rerun` resumes them all.

Multi-GPU (DDP) trials call `TorchTrainer.fit()` inside the trainable instead (Ray 2.60 refuses
`Tuner(TorchTrainer)`): Ray Train starts one actor per rank, sets RANK/WORLD_SIZE/LOCAL_RANK and creates the
process group, which the runner joins as it is. Every rank runs the worker in-process; it holds the lease and
writes the files on rank 0 only.

Retries (`max_failures`) rerun the worker, which resumes from the trial's own checkpoint.pt; Ray's own
checkpoints are not used. The Tune experiments live in the sweep's private folder (`private.py`: Tune unpickles
them), as `tune-<n>`; a submission whose trials are all unfinished in the latest one restores it (`Tuner.restore`)
instead of starting a new one.

`submit` blocks until the experiment ends. A job id is `ray:<host>:<driver pid>`: `poll` says whether that
driver still runs, `cancel` sends it SIGINT, which makes Tune save its state and stop every trial of that run
(Tune cannot stop one trial from outside its driver).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from ghostsweep.orchestrator.backends.base import (
    BackendOptions,
    Placement,
    ProcessBackend,
    ProcessJob,
    TrialRef,
    worker_command,
    worker_env,
)
from ghostsweep.orchestrator.backends.private import private_dir
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import STALE_S, wait_until_released
from ghostsweep.trials.files import open_for_append
from ghostsweep.trials.trialdir import METRICS_FILE, WORKER_LOG, ExitCode, Outcome, read_lines, read_result
from ghostsweep.trials.typed import Range

POLL_INTERVAL_S = 1.0
EXPERIMENTS_DIR = "ray"
FORWARDED_ENV_PREFIXES = ("GHOSTSWEEP_", "WANDB_")  # driver settings the trial workers need (data dir, W&B)
# A runtime_env is job metadata that every user of the Ray cluster can read (`ray list jobs --detail`), so
# credentials (WANDB_API_KEY) never go into it. A Ray started here inherits them from this process, as its
# workers do; the nodes of a running cluster must have been started with them in their environment.
SECRET_ENV_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")
# Ray SIGKILLs an actor's child processes when the actor exits, which is how Tune stops a trial: the trial's
# worker would lose everything since its last checkpoint. It gets SIGTERM instead (PDEATHSIG) and saves.
KEEP_WORKER_ON_ACTOR_EXIT = {"RAY_kill_child_processes_on_worker_exit": "false"}
FINAL_FIELDS = ("final_val_acc", "final_test_acc", "best_val_acc", "iterations", "attempt", "wall_time_s")


class TrialFailed(RuntimeError):
    """The worker ended without a done result; Tune retries it up to max_failures times."""


@dataclass(frozen=True)
class RayOptions(BackendOptions):
    address: str | None = None  # `auto`, `HOST:PORT`, `ray://HOST:10001`; default: $RAY_ADDRESS, else a private Ray
    max_failures: Annotated[int, Range(ge=-1)] = 1  # Tune retries per trial; -1: forever
    max_concurrent_trials: Annotated[int | None, Range(ge=1)] = None  # default: as resources allow


@dataclass(frozen=True)
class RayBackend(ProcessBackend):
    name: ClassVar[str] = "ray"
    waits_for_trials: ClassVar[bool] = True
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT  # Tune saves the experiment, then stops every trial
    options: RayOptions = field(default_factory=RayOptions)

    def gone_reason(self, job: ProcessJob) -> str:
        return f"ray driver {job.pid} on {job.host} is gone; run again to resume"

    @property
    def runs_on_this_machine(self) -> bool:
        """A private Ray started here (no address given) runs every trial on this machine."""
        return not (self.options.address or os.environ.get("RAY_ADDRESS"))

    @property
    def ddp_workers(self) -> int:
        """Ranks of one trial: one per GPU on each node; 1 means no DDP."""
        return max(1, self.resources.gpus_per_trial) * self.resources.nodes

    def trial_resources(self) -> dict[str, float]:
        """Tune's request per trial: K packed trials share a GPU (or, on CPU, a slot of cpus_per_trial)."""
        r = self.resources
        if self.ddp_workers > 1:
            return {"cpu": 0.01}  # the trainable only waits; its Ray Train workers hold the devices
        if r.gpus_per_trial:
            return {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial / r.trials_per_gpu}
        return {"cpu": r.cpus_per_trial / r.trials_per_gpu}

    def place(self, placement: Placement) -> None:
        """Run the trials as one Tune experiment and block until it ends; SIGINT saves it for a resume."""
        import ray

        trials = placement.trials
        started_ray = not ray.is_initialized()
        if started_ray:
            # "local" starts a private cluster even when another user's `ray start` runs on this machine
            address = self.options.address or os.environ.get("RAY_ADDRESS") or "local"
            # Ray puts the driver's working directory on every worker's sys.path (and a local Ray's workers
            # start there): connect from the sweep's private folder, so neither a user's `ghostsweep.py` or
            # `model.py` beside their spec nor a module planted in the shared sweep is imported by a trial.
            neutral = private_dir(placement.sweep, EXPERIMENTS_DIR)
            withheld = sorted(name for name in os.environ if is_secret(name))
            if withheld and address != "local":
                print(f"ray: {', '.join(withheld)} not sent to the Ray cluster at {address} (a runtime_env is "
                      f"readable by its every user); its nodes need it in their own environment", file=sys.stderr)
            with contextlib.chdir(neutral):
                ray.init(address=address, include_dashboard=False, runtime_env=_runtime_env())
        # now, not on return: a trial this driver leaves unfinished must poll as gone
        placement.assign(trials, self.job_id(os.getpid()))
        try:
            self._settle(placement, self._tuner(placement.sweep, trials).fit())
        finally:
            if started_ray:
                ray.shutdown()
            # Stopped actors' workers checkpoint on SIGTERM after the driver's fit() returns: exiting before
            # they let go would show them running to an immediate `rerun`, which would skip them.
            held = wait_until_released([t.trial_dir for t in trials], POLL_INTERVAL_S, timeout_s=STALE_S)
        if held:
            print(f"ray: {len(held)} trial worker(s) still saving after {STALE_S:.0f} s: "
                  f"{', '.join(d.name for d in held)}", file=sys.stderr)

    def _tuner(self, sweep: SweepDir, trials: Sequence[TrialRef]) -> Any:
        """Restore the latest experiment when it holds every trial unfinished, else start a new one."""
        from ray import tune

        function = ddp_trial if self.ddp_workers > 1 else worker_trial
        trainable = tune.with_resources(function, self.trial_resources())
        trials_root = sweep.trials_root.resolve()  # the same path in every actor, whatever its cwd
        storage = private_dir(sweep, EXPERIMENTS_DIR)
        latest = max(storage.glob("tune-*"), key=lambda p: int(p.name.split("-")[1]), default=None)
        if latest is not None and tune.Tuner.can_restore(latest):
            wanted = {t.trial_id for t in trials}
            previous = tune.Tuner.restore(str(latest), trainable).get_results()
            finished = {_trial_id(r) for r in previous if r.error is None and r.metrics.get("done")}
            known = {_trial_id(r) for r in previous}
            errored = {_trial_id(r) for r in previous if r.error is not None}
            if wanted <= known and not wanted & finished:
                return tune.Tuner.restore(str(latest), trainable, resume_unfinished=True,
                                          restart_errored=bool(wanted & errored))
        name = f"tune-{int(latest.name.split('-')[1]) + 1 if latest else 1}"
        return tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search([t.trial_id for t in trials]),
                         "trials_root": str(trials_root),
                         "ddp_workers": self.ddp_workers, "use_gpu": self.resources.gpus_per_trial > 0,
                         "train_storage": str(storage / "train")},
            tune_config=tune.TuneConfig(max_concurrent_trials=self.options.max_concurrent_trials,
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name=name, storage_path=str(storage), verbose=0,  # submit shows progress from the files
                failure_config=tune.FailureConfig(max_failures=self.options.max_failures),
            ),
        )

    @staticmethod
    def _settle(placement: Placement, grid: Any) -> None:
        """Settle every errored trial with Ray's reason; the run was interrupted when a trial did not end."""
        by_id = {_trial_id(r): r for r in grid}
        interrupted = False
        for trial in placement.trials:
            result = by_id.get(trial.trial_id)
            if result is not None and result.error is not None:
                placement.settle(trial, f"ray: {_one_line(result.error)}")
            elif result is None or not result.metrics.get("done"):
                interrupted = True
        if interrupted:
            placement.interrupt("ray sweep interrupted; run it again to resume (Tuner.restore)")


def worker_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable: run the worker for one trial, reporting each eval line as it lands."""
    trial_dir = Path(config["trials_root"]) / config["trial_id"]
    wait_until_released([trial_dir], POLL_INTERVAL_S)  # an earlier attempt's worker may still be checkpointing
    with open(open_for_append(trial_dir / WORKER_LOG), "a") as log:
        process = subprocess.Popen(worker_command([trial_dir]), stdout=log, stderr=subprocess.STDOUT,
                                   env=worker_env(), start_new_session=True, preexec_fn=_terminate_with_parent)
    try:
        follow_trial(trial_dir, process.poll)
    finally:
        if process.poll() is None:  # this thread is being torn down: let the worker checkpoint
            process.terminate()


def ddp_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable for a DDP trial: fit in a thread, report the trial's metrics meanwhile."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trial_dir = Path(config["trials_root"]) / config["trial_id"]
    wait_until_released([trial_dir], POLL_INTERVAL_S)  # an earlier attempt's worker may still be checkpointing
    trainer = TorchTrainer(
        _ddp_rank,
        train_loop_config={"trial_dir": str(trial_dir)},
        scaling_config=ScalingConfig(num_workers=config["ddp_workers"], use_gpu=config["use_gpu"]),
        run_config=RunConfig(name=trial_dir.name,
                             storage_path=config["train_storage"]),
    )
    errors: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except Exception as error:  # noqa: BLE001  (follow_trial reports the trial's own reason)
            errors.append(error)

    thread = threading.Thread(target=fit, name=f"fit-{trial_dir.name}", daemon=True)
    thread.start()
    try:
        follow_trial(trial_dir, lambda: None if thread.is_alive() else len(errors))
    except TrialFailed as failure:
        raise TrialFailed(f"{failure}; ray train: {errors[0] if errors else 'ok'}") from None


def _ddp_rank(loop_config: dict[str, Any]) -> None:
    """One DDP rank inside a Ray Train worker: the worker in-process, in the group Ray Train set up."""
    import ray.train

    from ghostsweep.orchestrator.submission import worker

    code = worker.run_trial_dir(Path(loop_config["trial_dir"]))
    if code != ExitCode.DONE:
        raise TrialFailed(f"rank {ray.train.get_context().get_world_rank()} worker exited {code}")


def follow_trial(trial_dir: Path, exit_code: Callable[[], int | None]) -> None:
    """Report new metrics.jsonl lines until `exit_code()` is not None, then the result (or raise why not)."""
    from ray import tune

    seen = 0
    while True:
        code = exit_code()
        for row in read_lines(trial_dir / METRICS_FILE):
            if row["iteration"] > seen:
                seen = row["iteration"]
                tune.report({"trial_id": trial_dir.name, **row})
        if code is not None:
            break
        time.sleep(POLL_INTERVAL_S)
    result = read_result(trial_dir)
    if result is None or not result.done:
        status, reason = (result.status, result.reason) if result else ("no result", None)
        raise TrialFailed(f"{status}: {reason} (worker exit {code})")
    import ray

    node = ray.get_runtime_context().get_node_id()  # which Ray node ran it, for the Tune results
    tune.report({"trial_id": trial_dir.name, "status": Outcome.DONE.value, "ray_node_id": node,
                 **{k: getattr(result, k) for k in FINAL_FIELDS}})


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the actor that started it dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _runtime_env() -> dict[str, Any]:
    """What every Ray worker process gets: our settings, and the user's own PYTHONPATH (ghostsweep itself is
    installed on every node; $PYTHONPATH only adds the user's modules, e.g. a stand-in trial runner)."""
    env = {k: v for k, v in os.environ.items()
           if (k.startswith(FORWARDED_ENV_PREFIXES) and not is_secret(k)) or k == "PYTHONPATH"}
    return {"env_vars": env | KEEP_WORKER_ON_ACTOR_EXIT}


def is_secret(name: str) -> bool:
    """A credential (WANDB_API_KEY) among the variables we would forward: it never goes into a runtime_env."""
    return name.startswith(FORWARDED_ENV_PREFIXES) and any(word in name.upper() for word in SECRET_ENV_WORDS)


def _trial_dirname(trial: Any) -> str:
    return trial.config["trial_id"]


def _trial_id(result: Any) -> str:
    """A Tune result's trial id: its folder's name (a trial that never started has no config)."""
    return Path(result.path).name


def _one_line(error: BaseException) -> str:
    """The last line of a Ray error (its traceback precedes it), short enough for `status`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]
