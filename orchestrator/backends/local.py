"""`local`: trials run as worker subprocesses on this machine, N at a time, on CPU or on GPUs.

`submit` blocks until every trial has finished, showing a progress bar. GPU slots get CUDA_VISIBLE_DEVICES;
`trials_per_gpu = K` hands K trial dirs to one worker, which runs them side by side on its slot. A worker's
job id is `local:<pid>`; before a trial's worker starts, its job id is the submitting process, so `cancel`
(SIGTERM) reaches both. Worker output goes to `worker.log` in the first trial's folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ghostsweep.orchestrator.backends.base import Backend, JobInfo, Submission, TrialRef
from ghostsweep.orchestrator.lease import break_dead_lease
from ghostsweep.orchestrator.state import read_state, record_failure, record_job_id, unqueue

OPTIONS = ("max_parallel", "gpus")
POLL_INTERVAL_S = 0.5
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so workers import this same code, installed or not


@dataclass
class _Worker:
    process: subprocess.Popen
    trials: list[TrialRef]
    slot: str | None


@dataclass
class LocalBackend(Backend):
    name: ClassVar[str] = "local"

    def validate(self) -> None:
        self.reject_unknown_options(OPTIONS)
        parallel = self.options.get("max_parallel")
        if parallel is not None and (type(parallel) is not int or parallel < 1):
            raise ValueError(f"backend.options.max_parallel: must be an integer >= 1, got {parallel!r}")
        gpus = self.options.get("gpus")
        if gpus is not None and (not isinstance(gpus, list) or not all(isinstance(g, int) for g in gpus)):
            raise ValueError(f"backend.options.gpus: must be a list of GPU indices, got {gpus!r}")
        if self.resources.nodes != 1:
            raise ValueError(f"resources.nodes: local runs on this one machine, got {self.resources.nodes}")
        if self.resources.gpus_per_trial > len(self._gpus()):
            raise ValueError(
                f"resources.gpus_per_trial: {self.resources.gpus_per_trial} but this machine has "
                f"{len(self._gpus())} GPU(s); set it to 0 to run on CPU"
            )

    def _gpus(self) -> list[int]:
        if "gpus" in self.options:
            return list(self.options["gpus"])
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return list(range(len([d for d in visible.split(",") if d.strip()])))
        import torch

        return list(range(torch.cuda.device_count()))

    def _slots(self) -> list[str | None]:
        """CUDA_VISIBLE_DEVICES per concurrent worker (None: a CPU worker)."""
        per_trial = self.resources.gpus_per_trial
        parallel = self.options.get("max_parallel")
        if not per_trial:
            return [None] * (parallel or max(1, (os.cpu_count() or 1) // self.resources.cpus_per_trial))
        gpus = self._gpus()
        groups = [gpus[i:i + per_trial] for i in range(0, len(gpus) - per_trial + 1, per_trial)]
        return [",".join(map(str, group)) for group in groups][:parallel]

    def submit(self, trials: Sequence[TrialRef]) -> list[Submission]:
        """Run every trial to its end (or until SIGTERM/SIGINT, which interrupts the running ones)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        own_job = f"local:{os.getpid()}"
        for trial in trials:
            record_job_id(trial.trial_dir, own_job)
        per_worker = self.resources.trials_per_gpu
        batches = [list(trials[i:i + per_worker]) for i in range(0, len(trials), per_worker)]
        free_slots = self._slots()
        running: list[_Worker] = []
        submissions: dict[str, Submission] = {}
        stopping = False

        def stop(_signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True
            for worker in running:
                worker.process.send_signal(signal.SIGTERM)

        previous_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        console = Console(stderr=True, log_path=False)
        counts: dict[str, int] = {}
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"), console=console,
        )
        task = progress.add_task("trials", total=len(trials), counts="")
        try:
            with progress:
                while (batches and not stopping) or running:
                    while batches and free_slots and not stopping:
                        worker = self._launch(batches.pop(0), free_slots.pop(0))
                        running.append(worker)
                        job_id = f"local:{worker.process.pid}"
                        submissions |= {t.trial_id: Submission(t.trial_id, job_id) for t in worker.trials}
                    time.sleep(POLL_INTERVAL_S)
                    for worker in [w for w in running if w.process.poll() is not None]:
                        running.remove(worker)
                        free_slots.append(worker.slot)
                        for trial in worker.trials:
                            state = self._settle(trial, worker.process.returncode)
                            counts[state] = counts.get(state, 0) + 1
                            progress.console.log(f"{state:9} {trial.trial_id}")
                            summary = ", ".join(f"{n} {s}" for s, n in counts.items())
                            progress.update(task, advance=1, counts=summary)
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            for batch in batches:  # never started: pending again
                for trial in batch:
                    unqueue(trial.trial_dir)
        return list(submissions.values())

    def _launch(self, batch: list[TrialRef], slot: str | None) -> _Worker:
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                        os.environ.get("PYTHONPATH")]))}
        if slot is None:
            env["CUDA_VISIBLE_DEVICES"] = ""
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(self.resources.cpus_per_trial))
        else:
            env["CUDA_VISIBLE_DEVICES"] = slot
        log = open(batch[0].trial_dir / "worker.log", "a")  # noqa: SIM115  (the child owns it from here)
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", "ghostsweep.orchestrator.worker", *(str(t.trial_dir) for t in batch)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        for trial in batch:
            record_job_id(trial.trial_dir, f"local:{process.pid}")
        return _Worker(process, batch, slot)

    @staticmethod
    def _settle(trial: TrialRef, returncode: int) -> str:
        """The trial's state after its worker exited; a worker killed before writing a result fails it."""
        break_dead_lease(trial.trial_dir)
        state = read_state(trial.trial_dir)
        if state.state in ("queued", "running"):
            how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
            record_failure(trial.trial_dir, f"worker {how} without a result; see worker.log")
            return "failed"
        return state.state

    def poll(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        infos = {}
        for job_id in job_ids:
            pid = _pid(job_id)
            if pid is not None and _is_our_process(pid):
                infos[job_id] = JobInfo(job_id, "RUNNING")
            else:
                infos[job_id] = JobInfo(job_id, "GONE", final=True, reason=f"local process {pid} is gone")
        return infos

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            pid = _pid(job_id)
            if pid is not None and _is_our_process(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def _pid(job_id: str) -> int | None:
    prefix, _, pid = job_id.partition(":")
    return int(pid) if prefix == "local" and pid.isdigit() else None


def _is_our_process(pid: int) -> bool:
    """Alive, and one of ours (a recycled pid must never be signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"orchestrator" in cmdline or b"ghostsweep" in cmdline
