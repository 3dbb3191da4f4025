"""A stand-in trial for Slurm jobs (`GHOSTSWEEP_TRIAL_RUNNER=slurm_fixtures:timed_trial`), where the real
runner's speed on a busy machine would make a time-limit test flaky: it needs TIMED_TRIAL_S seconds of "work"
in total, kept across attempts (and kills) in work.json, and stops ("interrupted") on SIGUSR2/SIGTERM like the
runner."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from ghostsweep.trials.files import atomic_write_json, read_json


def timed_trial(config: Any, out_dir: Path, data_dir: Path | None = None, **_: object) -> dict:
    total = float(os.environ["TIMED_TRIAL_S"])
    work = read_json(out_dir / "work.json") or {"done_s": 0.0, "attempts": 0}
    work["attempts"] += 1
    # A plain flag, not threading.Event: Event.set() in a signal handler deadlocks when the signal lands while
    # the main thread is inside Event.wait() holding the event's lock.
    stopped: list[int] = []
    for signum in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: stopped.append(received))
    last = time.time()
    while work["done_s"] < total and not stopped:  # progress saved each second: a kill loses <= 1 s
        atomic_write_json(out_dir / "work.json", work)
        time.sleep(min(0.2, total - work["done_s"]))
        now = time.time()
        work["done_s"], last = work["done_s"] + now - last, now
    atomic_write_json(out_dir / "work.json", work)
    finished = work["done_s"] >= total
    result = {"status": "done" if finished else "interrupted", "trial_id": out_dir.name, "seed": config.seed,
              "reason": None if finished else "stop requested"}
    atomic_write_json(out_dir / "result.json", result)
    return result


def bound_trial(config: Any, out_dir: Path, data_dir: Path | None = None, **_: object) -> dict:
    """A stand-in for a GPU trial on the stand-in GPUs (no CUDA behind them): records the node and GPUs it was
    given exactly as the runner does (`trials.binding`), holds them for BOUND_TRIAL_S seconds so that concurrent
    tasks overlap, and fails as a broken GPU would ("CUDA error ... Xid") on the node named by FAIL_ON_NODE."""
    import torch

    from ghostsweep.trials.binding import rank_binding
    from ghostsweep.trials.distributed import detect

    binding = rank_binding(detect(), torch.device("cpu"))
    started = time.time()
    time.sleep(float(os.environ.get("BOUND_TRIAL_S", "5")))
    broken = binding["node"] == os.environ.get("FAIL_ON_NODE")
    result = {"status": "failed" if broken else "done", "trial_id": out_dir.name, "seed": config.seed,
              "reason": "RuntimeError: CUDA error: unspecified launch failure (Xid 79: GPU has fallen off the bus)"
              if broken else None, "node": binding["node"], "gpu_binding": [binding],
              "started_at": started, "finished_at": time.time()}
    atomic_write_json(out_dir / "result.json", result)
    return result
