"""`local`: trials run as worker subprocesses on this machine, N at a time, on CPU or on GPUs.

`submit` blocks until every trial has finished (the CLI shows their progress, read from their files). GPU
slots get CUDA_VISIBLE_DEVICES; `trials_per_gpu = K` hands K trial dirs to one worker, which runs them side by
side on its slot. A worker's job id is `local:<host>:<pid>`; before a trial's worker starts, its job id is the
submitting process, so `cancel` (SIGTERM) reaches both. Worker output goes to `worker.log` in the first trial's folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from ghostsweep.orchestrator.backends.base import (
    BackendOptions,
    Placement,
    ProcessBackend,
    SignalForwarder,
    TrialRef,
    worker_command,
    worker_env,
)
from ghostsweep.trials.files import open_for_append
from ghostsweep.trials.trialdir import WORKER_LOG, ExitCode
from ghostsweep.trials.typed import Range

POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class LocalOptions(BackendOptions):
    max_parallel: Annotated[int | None, Range(ge=1)] = None  # default: every GPU group, or CPU slot
    gpus: list[int] | None = None  # GPU indices to use; default: CUDA_VISIBLE_DEVICES, else every GPU


@dataclass
class _Worker:
    process: subprocess.Popen
    trials: list[TrialRef]
    slot: str | None


@dataclass(frozen=True)
class LocalBackend(ProcessBackend):
    name: ClassVar[str] = "local"
    waits_for_trials: ClassVar[bool] = True
    options: LocalOptions = field(default_factory=LocalOptions)

    @property
    def runs_on_this_machine(self) -> bool:
        return True

    def validate(self) -> None:
        if self.resources.nodes != 1:
            raise ValueError(f"resources.nodes: local runs on this one machine, got {self.resources.nodes}")
        if self.resources.gpus_per_trial and self.resources.gpus_per_trial > len(self._gpus()):
            raise ValueError(
                f"resources.gpus_per_trial: {self.resources.gpus_per_trial} but this machine has "
                f"{len(self._gpus())} GPU(s); set it to 0 to run on CPU"
            )

    def _gpus(self) -> list[int]:
        if self.options.gpus is not None:
            return list(self.options.gpus)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return list(range(len([d for d in visible.split(",") if d.strip()])))
        return list(range(_nvidia_gpu_count()))

    def _slots(self) -> list[str | None]:
        """CUDA_VISIBLE_DEVICES per concurrent worker (None: a CPU worker)."""
        per_trial = self.resources.gpus_per_trial
        parallel = self.options.max_parallel
        if not per_trial:
            return [None] * (parallel or max(1, (os.cpu_count() or 1) // self.resources.cpus_per_trial))
        gpus = self._gpus()
        groups = [gpus[i:i + per_trial] for i in range(0, len(gpus) - per_trial + 1, per_trial)]
        return [",".join(map(str, group)) for group in groups][:parallel]

    def place(self, placement: Placement) -> None:
        """Run every trial to its end (or until SIGTERM/SIGINT, which interrupts the running ones)."""
        trials = placement.trials
        placement.assign(trials, self.job_id(os.getpid()), announce=False)  # until a worker takes them
        per_worker = self.resources.trials_per_gpu
        batches = [trials[i:i + per_worker] for i in range(0, len(trials), per_worker)]
        free_slots = self._slots()
        running: list[_Worker] = []
        stop = SignalForwarder(send=signal.SIGTERM).install((signal.SIGTERM, signal.SIGINT))
        try:
            while (batches and not stop.received) or running:
                while batches and free_slots and not stop.received:
                    worker = self._launch(batches.pop(0), free_slots.pop(0))
                    running.append(worker)
                    stop.children.append(worker.process)
                    placement.assign(worker.trials, self.job_id(worker.process.pid))
                time.sleep(POLL_INTERVAL_S)
                for worker in [w for w in running if w.process.poll() is not None]:
                    running.remove(worker)
                    free_slots.append(worker.slot)
                    self._settle(placement, worker)
        finally:
            stop.restore()
        if stop.received:  # every worker has saved and exited: the caller says how to resume
            placement.interrupt(f"local sweep stopped by {signal.Signals(stop.received[0]).name}")

    def _launch(self, batch: list[TrialRef], slot: str | None) -> _Worker:
        if slot is None:  # a CPU worker: its thread pools sized like a Slurm task's
            env = worker_env(self.resources.cpus_per_trial, CUDA_VISIBLE_DEVICES="")
        else:
            env = worker_env(CUDA_VISIBLE_DEVICES=slot)
        with open(open_for_append(batch[0].trial_dir / WORKER_LOG), "a") as log:  # the child keeps its own fd
            process = subprocess.Popen(worker_command(t.trial_dir for t in batch), stdout=log,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return _Worker(process, batch, slot)

    @staticmethod
    def _settle(placement: Placement, worker: _Worker) -> None:
        """After a worker exited: a trial it left without a result (killed, crashed) fails. A worker that skipped
        its trials (leased elsewhere) leaves them to the other live worker: not a failure."""
        returncode = worker.process.returncode
        if returncode == ExitCode.SKIPPED:
            return
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        for trial in worker.trials:
            placement.settle(trial, f"worker {how} without a result; see {WORKER_LOG}")


def _nvidia_gpu_count() -> int:
    """The GPUs the driver shows this process, as torch.cuda.device_count() would count them, without importing
    torch (`submit` stays torch-free): `nvidia-smi -L` prints one line per GPU; no nvidia-smi, no GPUs."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines()) if listed.returncode == 0 else 0
