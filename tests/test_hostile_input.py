"""Hostile and careless input: each is one line, exit 2, nothing created, quickly and in little memory.

Each case runs the real CLI in a subprocess under a 1 GB address-space limit (an unbounded reader dies of it, or
shows as a MemoryError), with a generous wall timeout that only catches a hang; the child's peak RSS, read
from its own rusage, must stay under 300 MB. Speed is not asserted here (no timed tests): the loader's caps make
every case a bounded amount of work, and `python tests/test_hostile_input.py` prints each case's CPU seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.sweepspec import load_spec, parse_spec
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import record_failure

REPO = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 1 << 30  # 1 GB
MAX_RSS_MB = 300
HANG_S = 60  # far beyond any case's seconds: only a hang reaches it
GOOD = "name: tiny\ngrids:\n  - model: [resnet8]\nseeds: 2\nrecipe: {iterations: 10, milestones: [5]}\n"


def laughs(levels: int = 9) -> str:
    """"Billion laughs": ten strings, then each level a list of ten aliases of the one before (10^levels)."""
    parts = ["&a0 [" + ", ".join(['"lol"'] * 10) + "]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


LEARNING_RATES = str([round(0.001 * (i + 1), 3) for i in range(1000)])
HOSTILE_SPECS = {  # name: (spec text, a fragment of the one-line error)
    "billion laughs as name": (GOOD.replace("name: tiny", f"name: {laughs()}"), "YAML alias"),
    "billion laughs as a grid value": (GOOD.replace("model: [resnet8]", f"model: [resnet8]\n    recipe.lr: {laughs()}"),
                                       "YAML alias"),
    "seeds 0..99999": (GOOD.replace("seeds: 2", f"seeds: {list(range(100_000))}"), "100,000 values"),
    "seeds as a count of 10^5": (GOOD.replace("seeds: 2", "seeds: 100000"), "seeds: a count must be in [1, 1000]"),
    "10^6 trials": (GOOD.replace("seeds: 2", "seeds: 1000").replace(
        "model: [resnet8]", f"model: [resnet8]\n    recipe.lr: {LEARNING_RATES}"), "1,000,000 trials"),
    "10 MB value": (GOOD.replace("name: tiny", "name: " + "x" * 10_000_000), "larger than 1024 KiB"),
    "1 MB name under the size cap": (GOOD.replace("name: tiny", "name: " + "x" * 1_000_000), "name: must be"),
    "list-valued model option": (
        GOOD.replace("model: [resnet8]", "model: [ghost_resnet8]\n    first_layer: [[conv, ghost]]"), "first_layer"),
    "10^5-deep nesting": (GOOD.replace("name: tiny", "name: " + "[" * 100_000 + "]" * 100_000), "nest"),
    "64-deep nesting": (GOOD.replace("name: tiny", "name: " + "[" * 64 + "]" * 64), "nested deeper than 32"),
    "self-referencing alias": (GOOD.replace("name: tiny", "name: &x [*x]"), "inside the value it names"),
    "not UTF-8": (GOOD.replace("tiny", "\udcff"), "not UTF-8"),
}


# A small launcher sets the limit, forks the command and reports its rusage. Forking from pytest itself would
# not do: Linux carries the forking process's peak RSS into the child's `ru_maxrss` across exec, and pytest holds
# hundreds of MB late in a full run.
LAUNCHER = """
import json, os, resource, subprocess, sys
limit, report, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
with open(report, "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime,
               "rss_mb": usage.ru_maxrss / 1024}, out)
"""


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float, float]:
    """(exit code, stderr, CPU seconds, peak RSS in MB) of `ghostsweep ARGS`, under the address-space limit."""
    report = cwd / ".rusage.json"
    command = [sys.executable, "-P", "-m", "ghostsweep.orchestrator.cli", *args]
    try:
        done = subprocess.run([sys.executable, "-P", "-c", LAUNCHER, str(ADDRESS_SPACE), str(report), *command],
                              cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              errors="replace", env=os.environ | (env or {}), timeout=HANG_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ghostsweep {' '.join(args)[:80]} hung for {HANG_S} s")
    usage = json.loads(report.read_text())  # CPU, not wall: the machine may be shared
    report.unlink()
    return usage["code"], done.stderr, usage["cpu_s"], usage["rss_mb"]


def assert_one_line_refusal(code: int, err: str, rss_mb: float, fragment: str, prefix: str = "ghostsweep") -> None:
    assert code == 2, err[-2000:]
    assert err.startswith(f"{prefix}: error: ") and err.count("\n") == 1, err[-2000:]
    assert fragment in err, err
    assert len(err) < 500, len(err)  # echoed values are cut short
    assert rss_mb < MAX_RSS_MB, rss_mb


CASES = [("plan", case) for case in sorted(HOSTILE_SPECS)] + [  # submit reads specs with the same loader
    ("submit", case) for case in ("billion laughs as name", "10^6 trials", "10 MB value", "seeds 0..99999")]


@pytest.mark.parametrize(("command", "case"), CASES)
def test_hostile_spec_is_one_line_exit_2_and_creates_nothing(command, case, tmp_path):
    text, fragment = HOSTILE_SPECS[case]
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, err, _, rss_mb = run_cli([command, str(spec), "--out", str(tmp_path / "sweep")], tmp_path)
    assert_one_line_refusal(code, err, rss_mb, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no sweep, no runs/


def test_plan_of_dev_zero_reads_no_further_than_the_cap(tmp_path):
    code, err, _, rss_mb = run_cli(["plan", "/dev/zero"], tmp_path)
    assert_one_line_refusal(code, err, rss_mb, "/dev/zero: larger than 1024 KiB")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("text", "suffix", "fragment"), [
    ("model: resnet8\nrecipe: [unclosed\n", ".yaml", "invalid YAML"),
    ('{"model": "resnet8", "recipe": {"lr": 0.1,}}', ".json", "invalid JSON"),
    (f"model: resnet8\nwandb: {{tags: {laughs()}}}\n", ".yaml", "YAML alias"),
    ("model: resnet8\nmodel: resnet20\n", ".yml", "duplicate key 'model'"),
    ("model: !!python/object/apply:os.system ['true']\n", ".yaml", "YAML tags"),
])
def test_train_config_goes_through_the_same_strict_loader(text, suffix, fragment, tmp_path):
    config = tmp_path / f"config{suffix}"
    config.write_text(text)
    code, err, _, rss_mb = run_cli(["train", "--config", str(config), "--out", str(tmp_path / "trial")], tmp_path)
    assert_one_line_refusal(code, err, rss_mb, fragment, prefix="ghostsweep train")
    assert not (tmp_path / "trial").exists()


def test_a_written_config_json_is_still_a_valid_config(tmp_path):
    """JSON is parsed as JSON: `1e-05` (how json.dumps writes a small weight decay) stays a float."""
    from ghostsweep.orchestrator.cli import build_parser
    from ghostsweep.trials.cli import config_from_args

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "resnet8", "seed": 0, "recipe": {"weight_decay": 1e-05}, "trial_id": "x"}))
    args = build_parser("train").parse_args(["train", "--config", str(config), "--out", str(tmp_path / "t")])
    assert config_from_args(args).recipe.weight_decay == 1e-05


def test_submit_never_overwrites_a_folder_of_the_users_own(tmp_path, capsys):
    """The user's spec.yaml sits in the folder they name as --out: refused, the file untouched."""
    users = tmp_path / "project"
    users.mkdir()
    spec = users / "spec.yaml"
    spec.write_text(GOOD.replace("seeds: 2", "seeds: 1"))  # a valid spec: only the folder is wrong
    notes = users / "notes.txt"
    notes.write_text("mine")
    assert main(["submit", str(spec), "--out", str(users)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: --out: ") and "not a sweep's" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt", "spec.yaml"]
    assert spec.read_text() == GOOD.replace("seeds: 2", "seeds: 1") and notes.read_text() == "mine"


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    assert main(["submit", str(spec), "--out", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "--out: " in err and "is a file" in err and err.count("\n") == 1, err
    assert spec.read_text() == GOOD
    inside_a_file = spec / "sweep"  # a folder under a file: the OSError boundary
    assert main(["submit", str(spec), "--out", str(inside_a_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def immutable(path: Path) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(path)]).returncode == 0


@pytest.fixture
def read_only(tmp_path):
    """Makes a folder read-only even for root (chattr +i), undone afterwards."""
    made: list[Path] = []

    def make(path: Path) -> None:
        path.chmod(0o555)
        made.append(path)
        if os.access(path, os.W_OK) and not immutable(path):  # root ignores the mode
            pytest.skip("cannot make a folder read-only for this user here (no chattr +i)")

    yield make
    for path in made:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o755)


@pytest.mark.parametrize("command", ["submit", "rerun"])
def test_a_read_only_trial_folder_is_one_line(command, tmp_path, read_only, capsys, cifar10_dir, monkeypatch):
    monkeypatch.setenv("GHOSTSWEEP_DATA_DIR", str(cifar10_dir))
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(load_spec(spec))
    blocked = sweep.trial_dir(sweep.trial_ids()[1])
    read_only(blocked)
    args = ["submit", str(spec), "--out", str(sweep.root)] if command == "submit" else ["rerun", str(sweep.root)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: ") and err.count("\n") == 1, err
    assert str(blocked) in err and "not writable" in err
    assert not list(sweep.root.glob("trials/*/queued.json"))  # nothing was submitted


def test_status_shows_a_reason_that_looks_like_markup(tmp_path, capsys):
    """A failure reason is the trial's text (a path, an exception): `[/x]` is shown, not parsed by rich."""
    sweep = SweepDir(tmp_path / "sweep")
    sweep.materialize(parse_spec({"name": "m", "grids": [{"model": "resnet8"}], "seeds": 1}))
    record_failure(sweep.trial_dir(sweep.trial_ids()[0]), "bad [/x] [bold]raw")
    assert main(["status", str(sweep.root)]) == 0
    out = capsys.readouterr().out
    assert "bad [/x] [bold]raw" in out, out


def test_interrupted_submit_exits_130_and_rerun_resumes_as_it_says(tmp_path, cifar10_dir):
    """A real local submit of two tiny trials, one at a time; SIGINT once the first is training."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps({
        "name": "ctrlc", "grids": [{"model": "resnet8"}], "seeds": 2, "backend": {"options": {"max_parallel": 1}},
        "recipe": {"iterations": 150, "milestones": [100], "eval_interval": 150, "checkpoint_interval": 150,
                   "batch_size": 8},
        "data": {"val_size": 0, "test_size": 100}, "observe": {"test_every_eval": False},
        "runtime": {"device": "cpu"}, "resources": {"cpus_per_trial": 1},
    }))
    root = tmp_path / "sweep"
    env = os.environ | {"GHOSTSWEEP_DATA_DIR": str(cifar10_dir), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-P", "-m", "ghostsweep.orchestrator.cli"]
    submit = subprocess.Popen([*command, "submit", str(spec), "--out", str(root)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(root.glob("trials/*/progress.json")):  # the first trial is set up and training
        assert submit.poll() is None and time.monotonic() < deadline, submit.communicate()
        time.sleep(0.2)
    submit.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, err = submit.communicate(timeout=120)
    assert submit.returncode == 130, out + err
    resume = f"`ghostsweep rerun {root}` resumes every trial that is not done"
    assert resume in err, err
    states = json.loads(subprocess.run([*command, "status", str(root), "--json"], env=env, cwd=tmp_path,
                                       capture_output=True, text=True, check=True).stdout)
    assert sorted(t["state"] for t in states["trials"]) == ["pending", "preempted"], states

    rerun = subprocess.run([*command, "rerun", str(root)], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    states = json.loads(subprocess.run([*command, "status", str(root), "--json"], env=env, cwd=tmp_path,
                                       capture_output=True, text=True, check=True).stdout)
    assert [t["state"] for t in states["trials"]] == ["done", "done"], states


if __name__ == "__main__":  # the figures: seconds and peak RSS per hostile case (not a test: no timing asserts)
    import tempfile

    for name, (text, _) in sorted(HOSTILE_SPECS.items()):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "spec.yaml"
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
            code, err, seconds, rss_mb = run_cli(["plan", str(path)], Path(folder))
            print(f"{name:32} exit {code}  {seconds:5.2f} CPU-s  {rss_mb:6.1f} MB  {err.strip()[:90]}")
