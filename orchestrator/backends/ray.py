"""`ray`: the sweep as one Ray Tune experiment, on a running Ray cluster or on one started here.

Each trial is a Tune trial whose function trainable runs the shared worker (`python -m ghostsweep.orchestrator.worker
TRIAL_DIR`) as a child process and forwards its metrics.jsonl to `tune.report`. A child, not a call, because
the runner checkpoints on SIGTERM only in a main thread, and Tune runs trainables in a side thread: the child
gets SIGTERM when its actor dies (PDEATHSIG; Ray's own SIGKILL of an exiting actor's children is turned off),
so a stopped trial always ends "interrupted" with a checkpoint. An interrupted driver exits only once those
workers let go of their trials, so an immediate `rerun` resumes them all.
Multi-GPU trials call `TorchTrainer.fit()` inside the trainable instead (Ray 2.60 refuses
`Tuner(TorchTrainer)`); see `ray_ddp.py`.

Retries (`max_failures`) rerun the worker, which resumes from the trial's own checkpoint.pt; Ray's own
checkpoints are not used. The Tune experiments live in SWEEP_DIR/ray/tune-<n>; a submission whose trials are
all unfinished in the latest one restores it (`Tuner.restore`) instead of starting a new one.

`submit` blocks until the experiment ends. A job id is `ray:<host>:<driver pid>`: `poll` says whether that
driver still runs, `cancel` sends it SIGINT, which makes Tune save its state and stop every trial of that run
(Tune cannot stop one trial from outside its driver).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ghostsweep.orchestrator.backends.base import Backend, JobInfo, Submission, TrialRef
from ghostsweep.orchestrator.lease import STALE_S, break_dead_lease, wait_until_released
from ghostsweep.orchestrator.state import RESULT_FILE, read_state, record_failure, record_job_id, unqueue
from ghostsweep.trials.files import read_json, read_lines

OPTIONS = ("address", "max_failures", "max_concurrent_trials")
DEFAULT_MAX_FAILURES = 1
POLL_INTERVAL_S = 1.0
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so Ray workers import this same code, installed or not
EXPERIMENTS_DIR = "ray"
METRICS = "metrics.jsonl"
FORWARDED_ENV_PREFIXES = ("GHOSTSWEEP_", "WANDB_")  # driver settings the trial workers need (data dir, W&B)
# Ray SIGKILLs an actor's child processes when the actor exits, which is how Tune stops a trial: the trial's
# worker would lose everything since its last checkpoint. It gets SIGTERM instead (PDEATHSIG) and saves.
KEEP_WORKER_ON_ACTOR_EXIT = {"RAY_kill_child_processes_on_worker_exit": "false"}
FINAL_FIELDS = ("final_val_acc", "final_test_acc", "best_val_acc", "iterations", "attempt", "wall_time_s")


class TrialFailed(RuntimeError):
    """The worker ended without a done result; Tune retries it up to max_failures times."""


@dataclass
class RayBackend(Backend):
    name: ClassVar[str] = "ray"

    def validate(self) -> None:
        self.reject_unknown_options(OPTIONS)
        address = self.options.get("address")
        if address is not None and not isinstance(address, str):
            raise ValueError(f"backend.options.address: must be a Ray address string, got {address!r}")
        failures = self.options.get("max_failures", DEFAULT_MAX_FAILURES)
        if type(failures) is not int or failures < -1:
            raise ValueError(f"backend.options.max_failures: must be an integer >= -1, got {failures!r}")
        concurrent = self.options.get("max_concurrent_trials")
        if concurrent is not None and (type(concurrent) is not int or concurrent < 1):
            raise ValueError(
                f"backend.options.max_concurrent_trials: must be an integer >= 1, got {concurrent!r}"
            )

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

    def submit(self, trials: Sequence[TrialRef]) -> list[Submission]:
        """Run the trials as one Tune experiment and block until it ends; SIGINT saves it for a resume."""
        import ray

        if not trials:
            return []
        started_ray = not ray.is_initialized()
        if started_ray:
            # "local" starts a private cluster even when another user's `ray start` runs on this machine
            address = self.options.get("address") or os.environ.get("RAY_ADDRESS") or "local"
            ray.init(address=address, include_dashboard=False, runtime_env=_runtime_env())
        job_id = f"ray:{socket.gethostname()}:{os.getpid()}"
        for trial in trials:  # now, not on return: a trial this driver leaves unfinished must poll as gone
            record_job_id(trial.trial_dir, job_id)
        try:
            grid = self._tuner(trials).fit()
            interrupted = self._settle(trials, grid)
        finally:
            if started_ray:
                ray.shutdown()
            # Stopped actors' workers checkpoint on SIGTERM after the driver's fit() returns: exiting before
            # they let go would show them running to an immediate `rerun`, which would skip them.
            held = wait_until_released([t.trial_dir for t in trials], POLL_INTERVAL_S, timeout_s=STALE_S)
            for trial in trials:  # never started: pending again
                if read_state(trial.trial_dir).state == "queued" and not (trial.trial_dir / METRICS).exists():
                    unqueue(trial.trial_dir)
        if held:
            print(f"ray: {len(held)} trial worker(s) still saving after {STALE_S:.0f} s: "
                  f"{', '.join(d.name for d in held)}", file=sys.stderr)
        if interrupted:
            raise KeyboardInterrupt("ray sweep interrupted; run it again to resume (Tuner.restore)")
        return [Submission(trial.trial_id, job_id) for trial in trials]

    def _tuner(self, trials: Sequence[TrialRef]) -> Any:
        """Restore the latest experiment when it holds every trial unfinished, else start a new one."""
        from ray import tune

        from ghostsweep.orchestrator.backends.ray_ddp import ddp_trial

        function = ddp_trial if self.ddp_workers > 1 else worker_trial
        trainable = tune.with_resources(function, self.trial_resources())
        storage = trials[0].trial_dir.parent.parent / EXPERIMENTS_DIR
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
                         "trials_root": str(trials[0].trial_dir.parent),
                         "ddp_workers": self.ddp_workers, "use_gpu": self.resources.gpus_per_trial > 0},
            tune_config=tune.TuneConfig(max_concurrent_trials=self.options.get("max_concurrent_trials"),
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name=name, storage_path=str(storage), verbose=1,
                failure_config=tune.FailureConfig(
                    max_failures=self.options.get("max_failures", DEFAULT_MAX_FAILURES)),
            ),
        )

    @staticmethod
    def _settle(trials: Sequence[TrialRef], grid: Any) -> bool:
        """Record every errored trial with its reason; True when the run stopped before all trials ended."""
        by_id = {_trial_id(r): r for r in grid}
        interrupted = False
        for trial in trials:
            result = by_id.get(trial.trial_id)
            if result is not None and result.error is not None:
                break_dead_lease(trial.trial_dir)
                own = read_json(trial.trial_dir / RESULT_FILE) or {}
                if own.get("status") != "failed":
                    record_failure(trial.trial_dir, f"ray: {_one_line(result.error)}")
            elif result is None or not result.metrics.get("done"):
                interrupted = True
        return interrupted

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Drivers on this host only; another host's driver is unknown here (its trials' files decide)."""
        infos = {}
        for job_id in job_ids:
            host, pid = _driver(job_id)
            if host != socket.gethostname():
                continue
            if pid is not None and _is_driver(pid):
                infos[job_id] = JobInfo(job_id, "RUNNING", node=host)
            else:
                infos[job_id] = JobInfo(job_id, "GONE", node=host, final=True,
                                        reason=f"ray driver {pid} on {host} is gone; run again to resume")
        return infos

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            host, pid = _driver(job_id)
            if host == socket.gethostname() and pid is not None and _is_driver(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)


def worker_trial(config: dict[str, Any]) -> None:
    """Tune's function trainable: run the worker for one trial, reporting each eval line as it lands."""
    trial_dir = Path(config["trials_root"]) / config["trial_id"]
    wait_until_released([trial_dir], POLL_INTERVAL_S)  # an earlier attempt's worker may still be checkpointing
    with open(trial_dir / "worker.log", "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ghostsweep.orchestrator.worker", str(trial_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONPATH": _pythonpath()},
            cwd=PACKAGE_ROOT, start_new_session=True, preexec_fn=_terminate_with_parent,
        )
    try:
        follow_trial(trial_dir, process.poll)
    finally:
        if process.poll() is None:  # this thread is being torn down: let the worker checkpoint
            process.terminate()


def follow_trial(trial_dir: Path, exit_code: Callable[[], int | None]) -> None:
    """Report new metrics.jsonl lines until `exit_code()` is not None, then the result (or raise why not)."""
    from ray import tune

    seen = 0
    while True:
        code = exit_code()
        for row in read_lines(trial_dir / METRICS):
            if row["iteration"] > seen:
                seen = row["iteration"]
                tune.report({"trial_id": trial_dir.name, **row})
        if code is not None:
            break
        time.sleep(POLL_INTERVAL_S)
    result = read_json(trial_dir / RESULT_FILE) or {}
    if result.get("status") != "done":
        raise TrialFailed(f"{result.get('status', 'no result')}: {result.get('reason')} (worker exit {code})")
    import ray

    node = ray.get_runtime_context().get_node_id()  # which Ray node ran it, for the Tune results
    tune.report({"trial_id": trial_dir.name, "status": "done", "ray_node_id": node,
                 **{k: result.get(k) for k in FINAL_FIELDS}})


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the actor that started it dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _runtime_env() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    return {"env_vars": env | {"PYTHONPATH": _pythonpath(), **KEEP_WORKER_ON_ACTOR_EXIT}}


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))


def _trial_dirname(trial: Any) -> str:
    return trial.config["trial_id"]


def _trial_id(result: Any) -> str:
    """A Tune result's trial id: its folder's name (a trial that never started has no config)."""
    return Path(result.path).name


def _one_line(error: BaseException) -> str:
    """The last line of a Ray error (its traceback precedes it), short enough for `status`."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def _driver(job_id: str) -> tuple[str | None, int | None]:
    prefix, _, rest = job_id.partition(":")
    host, _, pid = rest.rpartition(":")
    return (host, int(pid)) if prefix == "ray" and pid.isdigit() else (None, None)


def _is_driver(pid: int) -> bool:
    """Alive, and one of ours (a recycled pid must never be signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmdline or b"ghostsweep" in cmdline
