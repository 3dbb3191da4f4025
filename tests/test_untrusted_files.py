"""A colleague's spec and a shared sweep folder are untrusted input (issue 25): no code runs from them, and one
strange file makes its own trial `unreadable` (naming the file) while every other trial and the command go on.

Planted in a copy of a real old sweep (tests/data/sweeps/v1/fixture, six done trials): a FIFO, a link to /dev/zero,
a link out of the sweep, a file over its cap, values of the wrong type and NaN. Crafted CIFAR-10 batches whose
unpickling would create a marker file. Every command runs in a subprocess under a wall timeout and a 1 GB
address-space limit, so a hang or an unbounded read fails the test instead of the test run.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ghostsweep.trials.datadir import TEST_FILE, TRAIN_FILES, DataError, check_batches, load_batch
from ghostsweep.trials.files import (
    MAX_JSON_BYTES,
    MAX_LINES_BYTES,
    MAX_RECORD_BYTES,
    UnreadableFile,
    read_json,
    read_lines,
)
from ghostsweep.trials.trialdir import TrialResult, read_metrics

FIXTURE = Path(__file__).parent / "data/sweeps/v1/fixture"  # five trials done, one pending
VICTIM = "resnet8-s1-7b345657"  # the trial a file is planted in; the other five must read as before
PENDING = "ghost_resnet8-conv-keep-s2-e98919d8"
HANG_S = 60  # only a hang (a FIFO read) reaches it
ADDRESS_SPACE = 1 << 30  # 1 GB: reading /dev/zero dies of it
GOOD_SPEC = "name: tiny\ngrids:\n  - model: [resnet8]\nseeds: 1\nrecipe: {iterations: 2, milestones: [1]}\n"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def ghostsweep(*args: object, env: dict[str, str] | None = None,
               trains: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess; one that `trains` (its workers load torch) runs without the memory limit."""
    return subprocess.run([sys.executable, "-m", "ghostsweep", *map(str, args)], capture_output=True, text=True,
                          timeout=HANG_S, preexec_fn=None if trains else _limit_memory,
                          env=os.environ | {"GHOSTSWEEP_TRIAL_CACHE": "off"} | (env or {}))


def strict_json(text: str) -> Any:
    """JSON as a strict parser reads it: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "sweep")
    return tmp_path / "sweep"


def victim_state(sweep: Path) -> dict[str, Any]:
    """`status --json` finishes, parses strictly, and every trial but the victim reads as before."""
    shown = ghostsweep("status", sweep, "--json")
    assert shown.returncode == 0, shown.stderr
    trials = {t["trial_id"]: t for t in strict_json(shown.stdout)["trials"]}
    others = {trial_id: t["state"] for trial_id, t in trials.items() if trial_id != VICTIM}
    assert others == {trial_id: "pending" if trial_id == PENDING else "done" for trial_id in others}
    return trials[VICTIM]


def edit_json(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


# item 6: one strange file stops no command

STRANGE_RESULTS = {  # how result.json is planted: the words its reason must hold
    "fifo": (lambda path: os.mkfifo(path), "not a regular file (a FIFO)"),
    "link to /dev/zero": (lambda path: path.symlink_to("/dev/zero"), "symbolic link"),
    "link out of the sweep": (lambda path: path.symlink_to(path.parents[3] / "outside.json"), "symbolic link"),
    "folder": (lambda path: path.mkdir(), "not a regular file (a folder)"),
    "over its cap": (lambda path: sparse(path, MAX_RECORD_BYTES + 1), "over the 1,048,576"),
}


def sparse(path: Path, size: int) -> None:
    path.touch()
    os.truncate(path, size)


def plant_result(sweep: Path, plant: str) -> str:
    """result.json of the victim made as `plant` says; the words its reason must hold."""
    result = sweep / "trials" / VICTIM / "result.json"
    (sweep.parent / "outside.json").write_text(result.read_text())  # valid: only where it lives is wrong
    result.unlink()
    make, words = STRANGE_RESULTS[plant]
    make(result)
    return words


@pytest.mark.parametrize("plant", STRANGE_RESULTS, ids=list(STRANGE_RESULTS))
def test_a_strange_result_json_is_one_unreadable_trial_and_every_command_goes_on(sweep: Path, plant: str) -> None:
    words = plant_result(sweep, plant)
    state = victim_state(sweep)
    assert state["state"] == "unreadable" and "result.json" in state["reason"] and words in state["reason"]
    table = ghostsweep("status", sweep, "--all")
    assert table.returncode == 0 and VICTIM in table.stdout, table.stderr
    report = ghostsweep("report", sweep, "--rows", "0")
    assert report.returncode == 0, report.stderr
    strict_json((sweep / "report.json").read_text())


def test_a_report_json_planted_as_a_link_is_made_again_unread(sweep: Path, tmp_path: Path) -> None:
    """Found by att25: `report` read the report.json it might reuse whole and through a link; one planted as a link
    to a file of 512 MiB ran it out of memory. Now it is refused unread, and the report made again."""
    assert ghostsweep("report", sweep, "--rows", "0").returncode == 0
    sparse(tmp_path / "large.json", MAX_JSON_BYTES + 1)
    (sweep / "report.json").unlink()
    (sweep / "report.json").symlink_to(tmp_path / "large.json")
    again = ghostsweep("report", sweep, "--rows", "0")
    assert again.returncode == 0, again.stderr
    assert not (sweep / "report.json").is_symlink() and strict_json((sweep / "report.json").read_text())


def test_rerun_sets_a_fifo_aside_and_runs_its_trial_again(sweep: Path, cifar10_dir: Path) -> None:
    plant_result(sweep, "fifo")
    rerun = ghostsweep("rerun", sweep, "--failed", env={"GHOSTSWEEP_DATA_DIR": str(cifar10_dir)}, trains=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "result.json is not a regular file; set aside as result.json.planted-1" in rerun.stdout
    assert victim_state(sweep)["state"] == "done"


@pytest.mark.parametrize("name", ["queued.json", "progress.json", "lease.json", "metrics.jsonl"])
def test_a_fifo_in_place_of_any_other_trial_file_hangs_nothing(sweep: Path, name: str) -> None:
    path = sweep / "trials" / VICTIM / name
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    state = victim_state(sweep)
    if name == "queued.json":  # a done trial's queued.json is only shown: it stays done, without a job id
        assert state["state"] == "done" and state["job_id"] is None
    assert ghostsweep("report", sweep, "--rows", "0").returncode == 0


def test_a_trial_folder_that_is_a_link_is_unreadable(sweep: Path, tmp_path: Path) -> None:
    folder = sweep / "trials" / VICTIM
    shutil.move(folder, tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere")
    state = victim_state(sweep)
    assert state["state"] == "unreadable" and "symbolic link" in state["reason"] and VICTIM in state["reason"]


SAVE_CHECKPOINT = ("import sys, torch; from ghostsweep.trials.checkpoint import save_checkpoint; "
                   "save_checkpoint(sys.argv[1], {'iteration': 1, 'weights': torch.zeros(2)})")


@pytest.mark.parametrize("plant", ["FIFO", "link"])
def test_saving_a_checkpoint_reads_nothing_planted_in_place_of_the_last(plant: str, tmp_path: Path) -> None:
    """Found by att25: the runner read the checkpoint it replaces whole, through links, to keep it as the previous
    one: a FIFO planted there while the trial ran hung the trial, a link out of the sweep became
    checkpoint.prev.pt (a hard link to the file it named). Now neither is kept, and the new checkpoint replaces it."""
    victim = tmp_path / "theirs.pt"
    victim.write_bytes(b"theirs")
    trial = tmp_path / "trial"
    trial.mkdir()
    current = trial / "checkpoint.pt"
    os.mkfifo(current) if plant == "FIFO" else current.symlink_to(victim)
    saved = subprocess.run([sys.executable, "-P", "-c", SAVE_CHECKPOINT, str(trial)], timeout=HANG_S,
                           capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr
    assert current.is_file() and not current.is_symlink() and not (trial / "checkpoint.prev.pt").exists()
    assert victim.read_bytes() == b"theirs"


def test_the_reader_refuses_without_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "sparse.jsonl").touch()
    os.truncate(tmp_path / "sparse.jsonl", MAX_LINES_BYTES + 1)
    for path, words in ((tmp_path / "fifo", "FIFO"), (tmp_path / "zero", "symbolic link"),
                        (tmp_path / "sparse.jsonl", "over the")):
        with pytest.raises(UnreadableFile, match=words):
            read_lines(path) if path.suffix == ".jsonl" else read_json(path)
    with pytest.raises(UnreadableFile, match="character device"):
        read_json("/dev/zero")
    assert read_json(tmp_path / "absent.json") is None and read_lines(tmp_path / "absent.jsonl") == []


# item 7: valid JSON of the wrong types, and NaN

WRONG_TYPES = {  # result.json change: the words of the reason
    "node as a list": ({"node": ["a"]}, "node: must be a string or null, got ['a']"),
    "reason as a mapping": ({"status": "failed", "reason": {"a": 1}}, "reason: must be a string or null"),
    "accuracy as a string": ({"final_test_acc": "91.2"}, "final_test_acc: must be a finite number or null"),
    "NaN accuracy": ({"final_test_acc": float("nan")}, "final_test_acc: must be a finite number or null, got nan"),
    "infinite accuracy": ({"best_val_acc": float("inf")}, "best_val_acc: must be a finite number or null, got inf"),
    "seed as true": ({"seed": True}, "seed: must be an integer or null, got True"),
}


@pytest.mark.parametrize("case", WRONG_TYPES, ids=list(WRONG_TYPES))
def test_a_value_of_the_wrong_type_is_an_unreadable_trial_not_a_traceback(sweep: Path, case: str) -> None:
    changes, words = WRONG_TYPES[case]
    edit_json(sweep / "trials" / VICTIM / "result.json", **changes)
    state = victim_state(sweep)
    assert state["state"] == "unreadable" and words in state["reason"] and state["final_test_acc"] is None
    table = ghostsweep("status", sweep, "--all")
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    report = ghostsweep("report", sweep, "--rows", "0")
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    trials = {t["trial_id"]: t for t in strict_json((sweep / "report.json").read_text())["trials"]}
    assert not trials[VICTIM]["done"] and trials[VICTIM]["final_test_acc"] is None  # left out of every number


def test_wrong_types_in_the_other_trial_files_stay_in_their_trial(sweep: Path) -> None:
    trial = sweep / "trials" / VICTIM
    edit_json(trial / "progress.json", iteration="30", images_per_s=float("nan"))
    (trial / "lease.json").write_text(json.dumps({"node": ["a"], "pid": "1", "token": 5}))
    rows = (trial / "metrics.jsonl").read_text().splitlines()
    (trial / "metrics.jsonl").write_text("\n".join([rows[0].replace('"val_acc": 22.8', '"val_acc": NaN'), "[1]"]))
    state = victim_state(sweep)
    assert state["state"] == "done" and state["node"] == "vm"  # result.json is fine: only the bad files are ignored
    assert ghostsweep("status", sweep, "--all").returncode == 0
    report = ghostsweep("report", sweep, "--rows", "0")
    assert report.returncode == 0, report.stderr
    strict_json((sweep / "report.json").read_text())


def test_records_keep_their_values_as_written() -> None:
    data = json.loads((FIXTURE / "trials" / VICTIM / "result.json").read_text()) | {"from_a_newer_writer": [1]}
    written = TrialResult.from_dict(data).to_dict()
    assert {k: written[k] for k in data if k != "from_a_newer_writer"} == {
        k: v for k, v in data.items() if k != "from_a_newer_writer"}
    assert all(written[k] is None for k in written.keys() - data.keys())  # fields newer than the file


def test_metrics_rows_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iteration": 1, "train_loss": NaN, "val_acc": 10.0}\n')
    assert read_metrics(path)[0]["iteration"] == 1  # a diverged run's NaN loss is what it wrote
    for line, words in (('{"iteration": "1"}', "line 1: iteration: must be an integer"), ("[1]", "must be a mapping"),
                        ('{"iteration": 1, "val_acc": "9"}', "val_acc: must be a number or null")):
        path.write_text(line + "\n")
        with pytest.raises(ValueError, match=words):
            read_metrics(path)


# item 2: no code runs from a data folder


class Payload:
    """Unpickles into `function(*args)`: how any crafted pickle runs code."""

    def __init__(self, function: Any, *args: Any) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.function, self.args


def payloads(marker: Path) -> dict[str, Any]:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w')"),
    }


def crafted_cifar(folder: Path, payload: Any) -> Path:
    """A complete data folder whose data_batch_3 runs `payload` when unpickled."""
    folder.mkdir(parents=True)
    for name in (*TRAIN_FILES, TEST_FILE):
        batch = {"data": np.zeros((10_000, 3072), dtype=np.uint8), "labels": [0] * 10_000}
        (folder / name).write_bytes(pickle.dumps(batch | ({"data": payload} if name == "data_batch_3" else {})))
    return folder


def test_the_real_cifar10_loads_through_the_restricted_unpickler(cifar10_dir: Path) -> None:
    for name in (*TRAIN_FILES, TEST_FILE, "batches.meta"):  # all 7 files
        batch = load_batch(cifar10_dir / name)
        assert isinstance(batch, dict)
    check_batches(cifar10_dir)


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.eval", "builtins.exec"])
def test_a_crafted_batch_is_refused_unrun(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    folder = crafted_cifar(tmp_path / "cifar-10-batches-py", payloads(marker)[kind])
    with pytest.raises(DataError, match=r"data_batch_3 is unreadable: UnpicklingError: it names .* \(refused"):
        check_batches(folder)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["submit", "train"])
def test_submit_and_train_refuse_a_crafted_data_dir_in_one_line_exit_2(command: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    folder = crafted_cifar(tmp_path / "data" / "cifar-10-batches-py", payloads(marker)["os.system"])
    (tmp_path / "spec.yaml").write_text(GOOD_SPEC + f"data_dir: {folder.parent}\n")
    args = (["submit", tmp_path / "spec.yaml", "--out", tmp_path / "sweep"] if command == "submit" else
            ["train", "--model", "resnet8", "--seed", "0", "--iterations", "2", "--milestones", "1", "--out",
             tmp_path / "trial", "--data-dir", folder.parent, "--device", "cpu"])
    done = ghostsweep(*args, trains=command == "train")
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1 and str(folder / "data_batch_3") in error and "posix.system" in error, error
    assert not marker.exists()
    assert not (tmp_path / "sweep").exists()
