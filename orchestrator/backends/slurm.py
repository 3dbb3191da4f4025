"""`slurm`: trials run as Slurm job arrays submitted through submitit; `submit` returns at once.

One `submit` is one sbatch per MaxArraySize trials (an array task runs `trials_per_gpu` packed trials, or one
DDP trial as `nodes x tasks_per_node` ranks). Each task runs the common worker as a subprocess and forwards
SIGUSR2/SIGTERM to it; when the worker exits "interrupted" after a USR2 (timeout warning or preemption),
submitit's own handler checkpoints the job and requeues it. The sweep's bad nodes (orchestrator/sweepdir/badnodes.py) go
to every sbatch as `--exclude` unless `exclude_bad_nodes: false`. `poll` is one batched `sacct` (or, on clusters
without accounting or with a slow one, one `squeue`, saying so) and `cancel` one `scancel`. See docs/slurm.md.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import submitit
from submitit.core.utils import DelayedSubmission

from ghostsweep.orchestrator.backends.base import (
    Backend,
    BackendOptions,
    JobInfo,
    JobPhase,
    Placement,
    SignalForwarder,
    TrialRef,
    worker_command,
    worker_env,
)
from ghostsweep.orchestrator.backends.private import private_dir
from ghostsweep.orchestrator.sweepdir.badnodes import is_host_list
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.lease import break_dead_lease, wait_until_released
from ghostsweep.trials.trialdir import LEASE_FILE, ExitCode, read_result
from ghostsweep.trials.typed import NON_NEGATIVE, Range

SBATCH_OPTIONS = ("partition", "account", "qos", "constraint", "gres")  # passed to sbatch as they are
# Scheduler states after which the job never runs again on its own. NODE_FAIL and PREEMPTED are absent on
# purpose: our jobs are submitted with --requeue, so Slurm puts them back in the queue (WAITING).
ENDED_STATES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED"})
ACTIVE_STATES = frozenset({
    "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING",
})
COMMAND_TIMEOUT_S = 60
# submitit writes each sbatch flag into the job script as `#SBATCH --key='value'`: a control character (a newline
# above all) in a key or value would end that comment line and make the rest a shell line of the job script.
SBATCH_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# sbatch flags a spec's `sbatch:` may not pass through: they choose what the job runs or with which environment
# (`export: "ALL,PYTHONPATH=/their/folder"` imports a colleague's modules into our job), or where it reads and writes
# files outside the sweep. sbatch takes any unambiguous prefix of a long flag (`--exp` is `--export`), so a key
# that begins one of these is refused too.
RESERVED_SBATCH_FLAGS = ("export", "export-file", "wrap", "container", "container-id", "bb", "bbf", "chdir",
                         "output", "error", "input", "open-mode")
LEASE_WAIT_S = 5.0


@dataclass(frozen=True)
class SlurmOptions(BackendOptions):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None  # replaces the GPU request (--gpus-per-node)
    array_parallelism: Annotated[int, Range(ge=1)] = 256  # tasks of one array running at once
    signal_delay_s: Annotated[int, Range(ge=1)] = 120  # USR2 this long before the time limit
    max_requeues: Annotated[int, NON_NEGATIVE] = 3  # timeouts and preemptions together, per job
    tasks_per_trial: Annotated[int, NON_NEGATIVE] = 0  # ranks per trial; 0: one per GPU, at least 1
    sacct_timeout_s: Annotated[int, Range(ge=1)] = 20  # then `status` falls back to squeue
    exclude_bad_nodes: bool = True  # sbatch --exclude the sweep's bad nodes (orchestrator/sweepdir/badnodes.py)
    sbatch: dict[str, str | int] = field(default_factory=dict)  # any other sbatch flags, passed through

    def __post_init__(self) -> None:
        """Values sbatch can take, before anything is written: see `check_sbatch_parameters`."""
        given = {key: getattr(self, key) for key in SBATCH_OPTIONS if getattr(self, key) is not None}
        check_sbatch_parameters(given | {"sbatch": self.sbatch}, "backend.options.")
        for key in self.sbatch:
            flag = str(key).lower().replace("_", "-")
            reserved = next((name for name in RESERVED_SBATCH_FLAGS if name.startswith(flag)), None)
            if reserved is not None:
                raise ValueError(f"backend.options.sbatch.{key}: sets sbatch --{reserved}, which decides what the "
                                 "job runs or where it writes; ghostsweep sets what its jobs need, and a spec may "
                                 "not change it")


def check_sbatch_parameters(parameters: Mapping[str, Any], where: str = "sbatch --") -> None:
    """ValueError (one line) for a flag or value Slurm does not take and a job script must not hold: a key that is
    not a flag name, a control character in a value, an `exclude` that is not a host list."""
    for key, value in parameters.items():
        if not SBATCH_KEY.fullmatch(str(key)):
            raise ValueError(f"{where}{key!r}: not an sbatch flag name (letters, digits, '-' and '_')")
        if isinstance(value, Mapping):
            check_sbatch_parameters(value, f"{where}{key}." if where.startswith("backend.") else where)
        elif CONTROL_CHARACTER.search(str(value)):
            raise ValueError(f"{where}{key}: {str(value)!r} holds a control character (a newline?), which "
                             f"Slurm does not take")
        elif key == "exclude" and not is_host_list(str(value)):
            raise ValueError(f"{where}{key}: {str(value)!r} is not a Slurm host list")
class SlurmError(RuntimeError):
    """A Slurm client command failed or timed out."""


def slurm_command(args: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """stdout of a Slurm client command; SlurmError (one line) when it fails or hangs."""
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]} not found: is Slurm installed here and SLURM_CONF set?") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{args[0]} did not answer within {timeout:g} s") from None
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split()) or f"exit code {done.returncode}"
        raise SlurmError(f"{args[0]} failed: {message}")
    return done.stdout


@dataclass(frozen=True)
class SlurmBackend(Backend):
    name: ClassVar[str] = "slurm"
    options: SlurmOptions = field(default_factory=SlurmOptions)

    @property
    def tasks_per_trial(self) -> int:
        return self.options.tasks_per_trial or max(1, self.resources.gpus_per_trial)

    def validate(self) -> None:
        """The layout and the cluster itself (partition, array size), before anything is submitted."""
        resources = self.resources
        if self.tasks_per_trial % resources.nodes:
            raise ValueError(
                f"resources.nodes: {self.tasks_per_trial} ranks per trial do not split evenly over "
                f"{resources.nodes} nodes"
            )
        if self.tasks_per_trial > 1 and resources.trials_per_gpu > 1:
            raise ValueError("resources.trials_per_gpu: packing and multi-rank (DDP) trials do not mix")
        if self.options.signal_delay_s >= resources.time_limit_min * 60:
            raise ValueError(
                f"backend.options.signal_delay_s: {self.options.signal_delay_s} s leaves no time to run "
                f"within resources.time_limit_min={resources.time_limit_min}"
            )
        self._check_cluster()

    def _check_cluster(self) -> None:
        if self.session.cluster is not None:
            return
        try:
            partitions = slurm_command(["sinfo", "-h", "-o", "%R"]).split()
            config = _parse_config(slurm_command(["scontrol", "show", "config"]))
        except SlurmError as error:
            raise ValueError(f"slurm backend: {error}") from None
        partition = self.options.partition
        if partition is not None and partition not in partitions:
            raise ValueError(
                f"backend.options.partition: no partition {partition!r} on this cluster; "
                f"available: {', '.join(sorted(set(partitions)))}"
            )
        self.session.cluster = config

    @property
    def max_array_size(self) -> int:
        """Tasks per array: MaxArraySize from `scontrol show config` (array indices go up to it minus one)."""
        self._check_cluster()
        assert self.session.cluster is not None
        return int(self.session.cluster.get("MaxArraySize", "1001"))

    def exclude_nodes(self, nodes: Sequence[str]) -> bool:
        check_sbatch_parameters({"exclude": ",".join(nodes)} if nodes else {})
        if self.options.exclude_bad_nodes:
            self.session.excluded_nodes = tuple(sorted(set(self.session.excluded_nodes) | set(nodes)))
        return self.options.exclude_bad_nodes

    def place(self, placement: Placement) -> None:
        """One sbatch per MaxArraySize array tasks; all or nothing (a failed chunk cancels earlier ones, and no
        job id is recorded before every chunk is in)."""
        self.validate()
        per_task = self.resources.trials_per_gpu
        trials = placement.trials
        groups = [trials[i:i + per_task] for i in range(0, len(trials), per_task)]
        executor = self._executor(placement.sweep)
        jobs: list[tuple[list[TrialRef], str]] = []
        try:
            for start in range(0, len(groups), self.max_array_size):
                chunk = groups[start:start + self.max_array_size]
                with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # submitit echoes sbatch's error
                    submitted = [executor.submit(self._task(group)) for group in chunk]
                jobs += [(group, job.job_id) for group, job in zip(chunk, submitted, strict=True)]
        except submitit.core.utils.FailedJobError as error:  # sbatch refused: its message, as one line
            if jobs:
                self.cancel(sorted({_array_job(job_id) for _, job_id in jobs}))
            raise ValueError(f"sbatch refused the job: {' '.join(str(error).split())}") from None
        except Exception:
            if jobs:
                self.cancel(sorted({_array_job(job_id) for _, job_id in jobs}))
            raise
        for group, job_id in jobs:
            placement.assign(group, job_id)

    def _task(self, group: list[TrialRef]) -> TrialTask:
        trial_dirs = [str(Path(t.trial_dir).resolve()) for t in group]
        return TrialTask(trial_dirs, self.options.max_requeues, self.resources.cpus_per_trial)

    def _executor(self, sweep: SweepDir) -> submitit.SlurmExecutor:
        """sbatch parameters from the spec; submitit's files (the job's pickles, its logs) go to the sweep's
        private folder (`private.py`): a pickle planted in the shared sweep folder would run as the job.

        The job's python is this one with `-P`: the job runs in SWEEP_DIR, and a module there must not shadow
        ghostsweep, submitit or their dependencies (the package itself is installed, so no PYTHONPATH is set)."""
        resources, options, sweep_dir = self.resources, self.options, sweep.root.resolve()
        per_task = resources.trials_per_gpu
        tasks_per_node = self.tasks_per_trial // resources.nodes
        parameters: dict[str, Any] = {
            "job_name": f"gs-{sweep_dir.name}",
            "time": resources.time_limit_min,
            "nodes": resources.nodes,
            "ntasks_per_node": tasks_per_node,
            "cpus_per_task": resources.cpus_per_trial * per_task,
            "mem": f"{int(resources.mem_gb * per_task * tasks_per_node * 1024)}MB",
            "signal_delay_s": options.signal_delay_s,
            "array_parallelism": options.array_parallelism,
            "additional_parameters": {"requeue": True, "chdir": str(sweep_dir), **options.sbatch},
        }
        parameters |= {key: getattr(options, key) for key in SBATCH_OPTIONS if getattr(options, key) is not None}
        if resources.gpus_per_trial and options.gres is None:
            parameters["gpus_per_node"] = max(1, resources.gpus_per_trial // resources.nodes)
        if self.session.excluded_nodes:
            parameters["exclude"] = ",".join(self.session.excluded_nodes)
        check_sbatch_parameters(parameters)  # before anything is made for the job
        executor = submitit.SlurmExecutor(private_dir(sweep, "slurm"), max_num_timeout=options.max_requeues,
                                          python=f"{shlex.quote(sys.executable)} -P")
        executor.update_parameters(**parameters)
        return executor

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """One `sacct` for all jobs (array parents, not tasks); on failure one `squeue`, saying so."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        parents = ",".join(sorted({_array_job(job_id) for job_id in wanted}))
        try:
            out = slurm_command(
                ["sacct", "-n", "-P", "-X", "-j", parents, "-o", "JobID,State,NodeList,Reason"],
                timeout=self.options.sacct_timeout_s,
            )
        except SlurmError as error:
            return self._poll_squeue(parents, wanted, str(error))
        infos = {}
        for line in out.splitlines():
            fields = line.split("|")
            if len(fields) < 4:
                continue
            job_field, state_field, node, reason = fields[:4]
            state = state_field.split()[0] if state_field.strip() else "UNKNOWN"
            for job_id in expand_job_ids(job_field):
                if job_id in wanted:
                    infos[job_id] = _job_info(job_id, state, node, reason)
        return infos

    def _poll_squeue(self, parents: str, wanted: set[str], why: str) -> dict[str, JobInfo]:
        """Without sacct, only live jobs are known; a job missing here is left to the trial's heartbeat."""
        self.warnings.append(f"sacct unavailable ({why}); falling back to squeue + heartbeats: one squeue call "
                             "for the jobs still queued or running, the sweep files for the rest")
        try:
            out = slurm_command(["squeue", "-h", "-r", "-j", parents, "-o", "%i|%T|%N"])
        except SlurmError as error:
            if "Invalid job id" in str(error):  # none of them is in the queue any more
                return {}
            raise
        infos = {}
        for line in out.splitlines():
            job_id, state, node = (line.split("|") + ["", ""])[:3]
            if job_id in wanted:
                infos[job_id] = _job_info(job_id, state, node, "")
        return infos

    def cancel(self, job_ids: Sequence[str]) -> None:
        """One `scancel`: Slurm sends SIGTERM, so running trials checkpoint before they stop."""
        if job_ids:
            slurm_command(["scancel", *sorted(set(job_ids))])


def _array_job(job_id: str) -> str:
    """The array job of an array task id (`123_4` -> `123`); other ids as they are."""
    return job_id.partition("_")[0]


def _job_phase(state: str) -> JobPhase:
    """Slurm's word for a job in the words every backend uses."""
    if state == "CANCELLED":
        return JobPhase.CANCELLED
    if state in ENDED_STATES:
        return JobPhase.ENDED
    return JobPhase.ACTIVE if state in ACTIVE_STATES else JobPhase.WAITING


def _job_info(job_id: str, state: str, node: str, reason: str) -> JobInfo:
    phase = _job_phase(state)
    why = None
    if phase is JobPhase.CANCELLED:
        why = "cancelled"
    elif phase is JobPhase.ENDED and state != "COMPLETED":
        why = f"slurm job {job_id} ended {state}" + (f" ({reason})" if reason not in ("", "None") else "")
    node_name = None if node in ("", "None assigned") else node
    return JobInfo(job_id, phase, node_name, reason=why, scheduler_state=state)


def _parse_config(text: str) -> dict[str, str]:
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def expand_job_ids(job_field: str) -> list[str]:
    """sacct's `123_[0-3,7%2]` (pending array tasks, one line) as `123_0 ... 123_7`; other ids as they are."""
    match = re.fullmatch(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]", job_field)
    if not match:
        return [job_field]
    parent, ranges = match.groups()
    ids = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        ids += [f"{parent}_{i}" for i in range(int(low), int(high or low) + 1)]
    return ids


class TrialTask(submitit.helpers.Checkpointable):
    """What one array task runs: the worker on its trial dirs, as a child process that receives our signals.

    Every rank of a DDP trial runs one, with its rank in the worker's environment; the worker takes the lease
    and writes the files on rank 0 only, and rank 0 alone requeues (as submitit does).
    """

    def __init__(self, trial_dirs: list[str], max_requeues: int, cpu_threads: int, requeues: int = 0) -> None:
        self.trial_dirs = trial_dirs
        self.max_requeues = max_requeues
        self.cpu_threads = cpu_threads
        self.requeues = requeues

    def __call__(self) -> int:
        signals = SignalForwarder().install((signal.SIGUSR2, signal.SIGTERM))
        requeue = signals.previous[signal.SIGUSR2]  # submitit's checkpoint_and_try_requeue
        main_rank = os.environ.get("SLURM_PROCID", "0") == "0"
        env = worker_env(self.cpu_threads, **distributed_env())
        while True:
            if main_rank:
                for trial_dir in self.trial_dirs:  # its holder died with its node (same host: at once)
                    break_dead_lease(Path(trial_dir))
            worker = subprocess.Popen(worker_command(self.trial_dirs), env=env)
            signals.children[:] = [worker]
            code = worker.wait()
            if code == ExitCode.SKIPPED:  # leased elsewhere, nothing failed: wait for that holder like below
                code = ExitCode.DONE
            blocked = [Path(d) for d in self.trial_dirs if main_rank and _leased_elsewhere(Path(d))]
            if code != ExitCode.DONE or signals.received or not blocked:
                break
            wait_until_released(blocked, LEASE_WAIT_S, stop=lambda: bool(signals.received))  # e.g. a dead node's
        if code == ExitCode.DONE and not blocked:
            return code
        if code in (ExitCode.DONE, ExitCode.INTERRUPTED) and set(signals.received) == {signal.SIGUSR2}:
            if not main_rank:
                return code  # rank 0 requeues the whole job
            if callable(requeue):
                requeue(signal.SIGUSR2, None)  # checkpoint() + `scontrol requeue` + exit
        raise RuntimeError(f"worker exited with code {code} (signals received: {sorted(set(signals.received))})")

    def checkpoint(self) -> DelayedSubmission | None:
        """The state lives in the trial dirs; we only count requeues (None: no more, the job ends)."""
        if self.requeues >= self.max_requeues:
            return None
        return DelayedSubmission(TrialTask(self.trial_dirs, self.max_requeues, self.cpu_threads, self.requeues + 1))


def _leased_elsewhere(trial_dir: Path) -> bool:
    """Not done, and another worker's lease (ours is released when our worker exits)."""
    result = read_result(trial_dir)
    return not (result is not None and result.done) and (trial_dir / LEASE_FILE).exists()


def distributed_env() -> dict[str, str]:
    """torch.distributed's env:// variables for a multi-task job; the port is derived from the job id."""
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return {}
    dist = submitit.helpers.TorchDistributedEnvironment()
    return {
        "MASTER_ADDR": dist.master_addr, "MASTER_PORT": str(dist.master_port), "RANK": str(dist.rank),
        "WORLD_SIZE": str(dist.world_size), "LOCAL_RANK": str(dist.local_rank),
        "LOCAL_WORLD_SIZE": str(dist.local_world_size),
    }
