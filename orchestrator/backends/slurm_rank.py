"""`python -m orchestrator.backends.slurm_rank TRIAL_DIR`: a DDP rank other than 0 inside a Slurm job.

Rank 0 runs the worker (lease, heartbeat, result files); the other ranks run the runner alone, since only rank
0 writes files and the lease has one holder. Exit codes are the worker's: 0 done, 1 failed, 3 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator import worker
from orchestrator.fsutil import read_json
from orchestrator.state import RESULT_FILE
from orchestrator.sweepdir import CONFIG_FILE


def main(trial_dir: Path) -> int:
    if (read_json(trial_dir / RESULT_FILE) or {}).get("status") == "done":
        return worker.EXIT_DONE  # rank 0's worker skips it too
    from trials.config import TrialConfig
    from trials.runner import run_trial

    config = {k: v for k, v in read_json(trial_dir / CONFIG_FILE).items() if k != "trial_id"}
    result = run_trial(TrialConfig.from_dict(config), trial_dir, worker._data_dir(trial_dir))
    return {"done": worker.EXIT_DONE, "interrupted": worker.EXIT_INTERRUPTED}.get(result.get("status"),
                                                                                 worker.EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
