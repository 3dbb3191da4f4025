"""A colleague's spec and a shared sweep folder are untrusted input (issue 25, writing side): what they hold never
becomes a shell line of a job script, a write outside the sweep or through a planted link, or more trials than a
spec may plan; each refusal is one line, exit 2, nothing submitted or written."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from test_slurm import slurm_conf  # noqa: F401  (the fixture: the shared cluster, up)

from ghostsweep.orchestrator.backends.base import Session
from ghostsweep.orchestrator.backends.private import PRIVATE_DIR_ENV, private_root
from ghostsweep.orchestrator.backends.slurm import SlurmBackend, SlurmOptions, check_sbatch_parameters
from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir import badnodes
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.orchestrator.sweepdir.state import read_state
from ghostsweep.trials.files import open_for_append

SPEC = "name: tiny\ngrids:\n  - model: [resnet8]\nseeds: 1\nrecipe: {iterations: 10, milestones: [5]}\n"
SHELL_LINE = "x\ntouch /tmp/pwned-by-the-spec"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def small_sweep(root: Path, data_dir: Path | None = None) -> SweepDir:
    """Two trials, never started; the spec also beside the folder as ROOT.yaml."""
    data = {"name": "s", "grids": [{"model": ["resnet8"]}], "seeds": 2, "recipe": {"iterations": 10, "milestones": [5]},
            **({"data_dir": str(data_dir)} if data_dir else {})}
    root.with_suffix(".yaml").write_text(json.dumps(data))
    sweep = SweepDir(root)
    sweep.materialize(parse_spec(data))
    return sweep


# 1. Shell text into the Slurm batch script

@pytest.mark.parametrize("options", [
    {"account": SHELL_LINE}, {"qos": SHELL_LINE}, {"constraint": SHELL_LINE}, {"gres": SHELL_LINE},
    {"sbatch": {"comment": SHELL_LINE}}, {"sbatch": {"comment\ntouch /tmp/pwned": 1}},
])
def test_a_spec_option_with_a_newline_is_refused_before_anything_is_written(options, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "backend:\n  name: slurm\n  options: " + json.dumps(options) + "\n")
    assert main(["submit", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    err = one_line_error(capsys)
    assert "backend.options." in err and "pwned" in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("sbatch", [
    {"export": "ALL,PYTHONPATH=/their/modules"}, {"exp": "ALL,LD_PRELOAD=/their/lib.so"}, {"Export_File": "/x"},
    {"wrap": "touch /tmp/pwned"}, {"container": "/their/image"}, {"output": "/home/me/.bashrc"}, {"o": "/x"},
    {"chdir": "/"},
])
def test_a_spec_cannot_pass_sbatch_flags_that_choose_what_the_job_runs(sbatch, tmp_path, capsys):
    """Found by att25: `sbatch: {export: "ALL,PYTHONPATH=DIR"}` in a spec made the real cluster's job import a
    `sitecustomize.py` from DIR. sbatch takes a prefix of a flag (`--exp`), so prefixes are refused too."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "backend:\n  name: slurm\n  options: " + json.dumps({"sbatch": sbatch}) + "\n")
    assert main(["submit", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    assert f"backend.options.sbatch.{next(iter(sbatch))}: sets sbatch --" in one_line_error(capsys)
    assert not (tmp_path / "sweep").exists()
    SlurmOptions(sbatch={"begin": "now+1hour", "mail-type": "END", "comment": "x", "exclusive": True, "nodelist": "n1"})


def test_every_sbatch_value_is_checked_where_the_job_script_is_made(tmp_path, monkeypatch):
    """A sweep folder whose name holds a newline reaches `--chdir` and `--job-name`: refused, no script made."""
    monkeypatch.setenv(PRIVATE_DIR_ENV, str(tmp_path / "private"))  # this test's own: other tests' sweeps are not in it
    backend = SlurmBackend(Resources(gpus_per_trial=0), SlurmOptions(), Session(cluster={"MaxArraySize": "1001"}))
    with pytest.raises(ValueError, match="control character"):
        backend._executor(SweepDir(tmp_path / "a\ntouch pwned"))
    assert not private_root().exists()  # nothing made for it
    with pytest.raises(ValueError, match="not a Slurm host list"):
        check_sbatch_parameters({"exclude": "node1 node2"})
    check_sbatch_parameters({"exclude": "gpu[01-03,07],node-2.cluster", "job_name": "gs-s", "requeue": True})


@pytest.mark.parametrize("planted", ["bad_nodes.json", "result.json"])
def test_a_node_name_from_the_sweep_folder_that_is_no_host_name_is_ignored(planted, tmp_path, capsys):
    sweep = small_sweep(tmp_path / "s")
    evil = "n1\ntouch /tmp/pwned-by-the-folder"
    if planted == "bad_nodes.json":
        (sweep.root / badnodes.BAD_NODES_FILE).write_text(json.dumps(
            {evil: {"trial_ids": ["t"], "reason": "Xid 79"}, "gpu07": {"trial_ids": ["t"], "reason": "Xid 79"}}))
    else:
        for trial_id in sweep.trial_ids():
            (sweep.trial_dir(trial_id) / "result.json").write_text(json.dumps(
                {"status": "failed", "trial_id": trial_id, "reason": "CUDA error: device lost", "node": evil}))
    nodes = [bad.node for bad in badnodes.bad_nodes(sweep)]
    assert nodes == (["gpu07"] if planted == "bad_nodes.json" else [])
    assert "ignoring bad node" in capsys.readouterr().err
    backend = SlurmBackend(Resources(gpus_per_trial=0), SlurmOptions(), Session(cluster={"MaxArraySize": "1001"}))
    with pytest.raises(ValueError, match="control character"):
        backend.exclude_nodes([evil])


GOOD_NODE = {"gpu07": {"trial_ids": ["t1", "t2"], "reason": "Xid 79"}}


@pytest.mark.parametrize("planted", [[1], {"n1": 5}, GOOD_NODE | {"n1": {}}, GOOD_NODE | {"n1": {"trial_ids": 3,
                                     "reason": "x"}}, GOOD_NODE | {"n1": {"trial_ids": [], "reason": ["x"]}}, "FIFO"])
def test_a_bad_nodes_file_of_the_wrong_shape_is_ignored_saying_so(planted, tmp_path, capsys):
    """Found by att25: a bad_nodes.json of the wrong types was a traceback of `status` (and of every submission),
    a FIFO one line that stopped `status`. Now what is not what `remember` writes is left out with a warning."""
    sweep = small_sweep(tmp_path / "s")
    path = sweep.root / badnodes.BAD_NODES_FILE
    os.mkfifo(path) if planted == "FIFO" else path.write_text(json.dumps(planted))
    assert main(["status", str(sweep.root)]) == 0
    err = capsys.readouterr().err
    assert "ghostsweep: warning: ignoring " in err and "Traceback" not in err, err
    assert [bad.node for bad in badnodes.bad_nodes(sweep)] == (["gpu07"] if "gpu07" in planted else [])
    badnodes.remember(sweep, [badnodes.BadNode("gpu09", ("t3",), "Xid 79")])
    assert set(json.loads(path.read_text())) == {"gpu09"} | ({"gpu07"} if "gpu07" in planted else set())


def test_bad_nodes_are_remembered_under_the_sweeps_lock(tmp_path, monkeypatch):
    """Two submissions at once each rewrote bad_nodes.json from their own read (issue 25's gap): `remember` now
    takes the lock `submit` and `extend` take for sweep.json."""
    from ghostsweep.orchestrator.sweepdir import directory

    sweep = small_sweep(tmp_path / "s")
    monkeypatch.setattr(directory, "LOCK_TIMEOUT_S", 0.2)
    with sweep.updating(), pytest.raises(ValueError, match="another ghostsweep command"):
        badnodes.remember(sweep, [badnodes.BadNode("gpu09", ("t3",), "Xid 79")])
    assert not (sweep.root / badnodes.BAD_NODES_FILE).exists()


@pytest.mark.slurm
def test_the_schedulers_own_refusal_is_one_line(slurm_conf, cifar10_dir, tmp_path, capsys):  # noqa: F811
    """sbatch itself refuses (a node that does not exist): one line, exit 2, no job recorded."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "runtime: {device: cpu}\nresources: {cpus_per_trial: 1, mem_gb: 1, time_limit_min: 5}\n"
                    "backend:\n  name: slurm\n  options: {sbatch: {nodelist: no-such-node}}\n")
    assert main(["submit", str(spec), "--out", str(tmp_path / "sweep"), "--data-dir", str(cifar10_dir)]) == 2
    err = one_line_error(capsys)
    assert "sbatch refused the job" in err and "Invalid node name" in err
    sweep = SweepDir(tmp_path / "sweep")
    assert not any((sweep.trial_dir(t) / "queued.json").exists() for t in sweep.trial_ids())


# 2. Writes follow links planted in the folder

def test_report_does_not_write_through_a_link_planted_as_its_png(tmp_path, monkeypatch):
    """A link `report-differences.png -> victim.txt` is replaced by the PNG, and the victim keeps its text."""
    from ghostsweep.orchestrator.report import files
    from ghostsweep.orchestrator.report.plots import PLOTS, Plot

    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "report"
    out.mkdir()
    paths = files.report_paths(out)
    for name in PLOTS:
        paths[name].symlink_to(victim)
    monkeypatch.setattr(files, "render_plots", lambda report, raster: {
        name: Plot(caption=name, svg="<svg/>", png=b"PNG") for name in PLOTS})
    for renderer in ("report_json", "to_markdown"):
        monkeypatch.setattr(files, renderer, lambda report: "")
    monkeypatch.setattr(files, "to_html", lambda report, plots: "")
    files.write_report(None, out)
    assert victim.read_text() == "mine"
    assert all(not paths[name].is_symlink() and paths[name].read_bytes() == b"PNG" for name in PLOTS)


@pytest.mark.parametrize("log", ["leases.jsonl", "worker.log"])
def test_appends_refuse_a_link_planted_in_a_trial_folder(log, tmp_path):
    from ghostsweep.orchestrator.sweepdir.lease import append_lease_event

    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    (trial_dir / log).symlink_to(victim)
    with pytest.raises(OSError):
        if log == "leases.jsonl":
            append_lease_event(trial_dir, {"event": "acquired"})
        else:
            open_for_append(trial_dir / log)
    assert victim.read_text() == "mine"


def test_a_submission_sets_aside_links_and_fifos_planted_among_a_trials_files(tmp_path, capsys):
    """Found by att25: `worker.log` or `leases.jsonl` planted as a link made every `rerun` of the sweep stop with
    ELOOP (exit 2, no trial run), for good. Marking a trial queued now sets such files aside (kept), so the
    trial runs; the link's target is never written."""
    from ghostsweep.orchestrator.sweepdir.state import mark_queued

    sweep = small_sweep(tmp_path / "s")
    trial_dir = sweep.trial_dir(sweep.trial_ids()[0])
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (trial_dir / "worker.log").symlink_to(victim)
    (trial_dir / "checkpoint.pt").symlink_to("/dev/zero")
    os.mkfifo(trial_dir / "leases.jsonl")
    (trial_dir / "wandb").mkdir()  # a folder of the trial's own stays
    mark_queued(trial_dir, "local")
    out = capsys.readouterr().out
    assert "worker.log is a symbolic link; set aside as worker.log.planted-1" in out
    assert "leases.jsonl is not a regular file; set aside as leases.jsonl.planted-1" in out
    assert sorted(p.name for p in trial_dir.iterdir() if p.is_symlink() or not (p.is_file() or p.is_dir())) == [
        "checkpoint.pt.planted-1", "leases.jsonl.planted-1", "worker.log.planted-1"]
    assert (trial_dir / "wandb").is_dir() and (trial_dir / "queued.json").is_file()
    os.close(open_for_append(trial_dir / "worker.log"))
    assert victim.read_text() == "mine"


@pytest.mark.parametrize("planted", ["FIFO", "/dev/zero", [1, 2], {"runs": 7}])
def test_sync_takes_its_records_as_untrusted(planted, tmp_path, capsys):
    """Found by att25: `sync` read wandb-sync.json and wandb-report.json whole and untyped (a FIFO hung it, a link
    to /dev/zero grew its memory, a list was a traceback), and pushed an offline run folder that was a link to
    anyone's runs. Now a bad record is ignored saying so (every run is pushed again), links are not pushed."""
    from ghostsweep.orchestrator.cli.sync import SYNC_RECORD
    from ghostsweep.orchestrator.report.wandb_report import PUBLISHED_FILE, published

    sweep = small_sweep(tmp_path / "s")
    own, linked = (sweep.trial_dir(trial_id) / "wandb" for trial_id in sweep.trial_ids())
    (own / "offline-run-own").mkdir(parents=True)
    (own / "offline-run-own" / "run-own.wandb").write_bytes(b"log")
    (tmp_path / "theirs" / "offline-run-theirs").mkdir(parents=True)
    (tmp_path / "theirs" / "offline-run-theirs" / "run-theirs.wandb").write_bytes(b"log")
    linked.mkdir()
    (linked / "offline-run-theirs").symlink_to(tmp_path / "theirs" / "offline-run-theirs")
    for name in (SYNC_RECORD, PUBLISHED_FILE):
        path = sweep.root / name
        if planted == "FIFO":
            os.mkfifo(path)
        elif planted == "/dev/zero":
            path.symlink_to(planted)
        else:
            path.write_text(json.dumps(planted))
    assert main(["sync", str(sweep.root), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert f"ghostsweep: warning: ignoring {sweep.root / SYNC_RECORD}: " in err
    assert "offline-run-own" in out and "offline-run-theirs" not in out and "would push 1 run(s)" in out
    assert published(sweep.root) is None


@pytest.mark.parametrize("planted", ["[1]", '{"seed": "x"}', "FIFO"])
def test_an_unreadable_config_of_a_trial_extend_added_stops_no_submit(planted, tmp_path, capsys):
    """Found by att25: the config.json of a trial `extend` had added, hand-edited to a list, made `submit` of the
    sweep a traceback; a FIFO, one line not naming the file. Now that trial is left out, saying so (extensions.json
    keeps it, so it comes back once repaired), and `extend` refuses a template of the wrong type in one line."""
    sweep = small_sweep(tmp_path / "s")
    data = json.loads(sweep.root.with_suffix(".yaml").read_text())
    added = parse_spec(data | {"seeds": 3}).trials[2]
    config = sweep.trial_dir(added.trial_id()) / "config.json"
    config.parent.mkdir()
    record = {"at": 0, "note": "", "trial_ids": [added.trial_id()], "rows": []}
    (sweep.root / "extensions.json").write_text(json.dumps([record]))
    os.mkfifo(config) if planted == "FIFO" else config.write_text(planted)
    sweep.materialize(parse_spec(data))
    assert f"left out {added.trial_id()}, which `extend` added: {config} is unreadable" in capsys.readouterr().err
    assert sweep.trial_ids() == [t.trial_id() for t in parse_spec(data).trials]
    template = sweep.trial_dir(sweep.trial_ids()[0]) / "config.json"
    template.write_text("[1]")
    assert main(["extend", str(sweep.root), "--seeds", "4", "--dry-run"]) == 2
    assert f"{template}: missing, not a JSON object" in one_line_error(capsys)


@pytest.mark.parametrize(("where", "command"), [
    ("sweep.json", ["status"]), ("sweep.json", ["rerun"]), ("sweep.json", ["report"]),
    ("extensions.json", ["submit", "spec.yaml"]), ("extensions.json", ["extend", "--seeds", "3"]),
])
def test_a_trial_id_that_is_no_plain_name_makes_the_index_unreadable(where, command, tmp_path, capsys,
                                                                      cifar10_dir):
    """`../../outside` as a trial id: one line naming the file, and nothing read or written outside the sweep."""
    sweep = small_sweep(tmp_path / "s", cifar10_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    escape = "../../outside"
    if where == "sweep.json":
        index = json.loads(sweep.index_path.read_text())
        first = index["trial_ids"][0]
        index["trial_ids"][0] = escape
        index["trials"][escape] = index["trials"].pop(first)
        sweep.index_path.write_text(json.dumps(index))
    else:
        (sweep.root / "extensions.json").write_text(json.dumps([{"at": 0, "note": "", "trial_ids": [escape]}]))
    args = [command[0], *(["--out"] if command[0] == "submit" else []), str(sweep.root), *command[1:]]
    if command[0] == "submit":
        args = ["submit", str(sweep.root.with_suffix(".yaml")), "--out", str(sweep.root)]
    assert main(args) == 2
    error = one_line_error(capsys)
    assert f"{where}: " in error and f"trial id '{escape}' is not a plain name" in error
    assert list(outside.iterdir()) == []



def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("linked", ["trial folders", "trials"])
def test_nothing_is_written_through_a_trial_folder_that_is_a_link(linked, tmp_path, capsys, cifar10_dir):
    """Found by att25: with a trial's folder (or the sweep's trials/) a link to a folder outside the sweep,
    `rerun` wrote queued.json there and ran the worker on it, and `submit` and `extend` wrote config.json into
    the linked folder of a trial they add. Now each command leaves such a trial out, saying so, and the folder
    outside is as it was (every trial that could run is linked: nothing trains)."""
    sweep = small_sweep(tmp_path / "s", cifar10_dir)
    spec = sweep.root.with_suffix(".yaml")
    data = json.loads(spec.read_text())
    trial_ids = [t.trial_id() for t in parse_spec(data | {"seeds": 4}).trials]  # seeds 2, 3: `submit`, `extend`
    outside = tmp_path / "outside"

    def link(trial_id: str) -> None:
        (outside / trial_id).mkdir(parents=True, exist_ok=True)
        if sweep.trial_dir(trial_id).is_dir():
            sweep.trial_dir(trial_id).rename(outside / trial_id)
        sweep.trial_dir(trial_id).symlink_to(outside / trial_id)

    def run(args: list[str], code: int, says: str) -> None:
        before = snapshot(outside)
        assert main(args) == code, args
        assert says in capsys.readouterr().err
        assert snapshot(outside) == before, args

    if linked == "trials":
        sweep.trials_root.rename(outside)
        sweep.trials_root.symlink_to(outside)
        run(["extend", str(sweep.root), "--seeds", "4"], 2, "in a folder that is a symbolic link; cannot copy it")
    else:
        for trial_id in trial_ids[1:]:
            link(trial_id)
        run(["extend", str(sweep.root), "--seeds", "4"], 0, "")  # its template: seed 0's; the new ones unreadable
        link(trial_ids[0])
    run(["rerun", str(sweep.root)], 1, "is a symbolic link")
    spec.write_text(json.dumps(data | {"seeds": 3}))
    run(["submit", str(spec), "--out", str(sweep.root)], 0, "")
    assert main(["status", str(sweep.root), "--json"]) == 0
    assert {state["state"] for state in json.loads(capsys.readouterr().out)["trials"]} == {"unreadable"}


@pytest.mark.parametrize(("planted", "problem"), [
    ({"trial_ids": [123, {"x": 1}]}, "'trial_ids' holds 2 value(s) that are not strings"),
    ({"trials": {"resnet8-x": [1]}, "trial_ids": ["resnet8-x"]}, "'trials' entry 'resnet8-x' is not a JSON object"),
])
@pytest.mark.parametrize("command", [["status"], ["report"], ["rerun", "--failed"], ["extend", "--seeds", "3"]])
def test_index_entries_of_the_wrong_type_are_one_line(planted, problem, command, tmp_path, capsys):
    """A hand-edited sweep.json whose trial ids or entries are not what a writer writes: one line, exit 2."""
    sweep = small_sweep(tmp_path / "s")
    index = json.loads(sweep.index_path.read_text())
    sweep.index_path.write_text(json.dumps(index | planted))
    assert main([command[0], str(sweep.root), *command[1:]]) == 2
    assert problem in one_line_error(capsys)

@pytest.mark.parametrize(("key", "value"), [
    ("variant", []), ("model", []), ("seed", "0"), ("label", {"a": 1}), ("report", {"target_halfwidth_pp": []}),
    ("data_dir", 5),
])
@pytest.mark.parametrize("command", [["status"], ["report"]])
def test_index_values_of_the_wrong_type_are_one_line(key, value, command, tmp_path, capsys):
    """Found by att25 (a fuzzer over sweep.json's keys): a trial entry's `variant` or `model`, or
    `report.target_halfwidth_pp`, of the wrong type made `report` a traceback. Each key is now typed when read."""
    sweep = small_sweep(tmp_path / "s")
    index = json.loads(sweep.index_path.read_text())
    if key in ("report", "data_dir"):
        index[key] = value
    else:
        next(iter(index["trials"].values()))[key] = value
    sweep.index_path.write_text(json.dumps(index))
    assert main([command[0], str(sweep.root)]) == 2
    assert f"unreadable {sweep.index_path}: " in one_line_error(capsys)


# 3. `extend` obeys a spec's caps

def test_extend_obeys_the_trial_cap_a_spec_obeys(tmp_path, capsys):
    """101 rows × 1 seed taken to 1000 seeds is 101,000 trials: refused as the same sweep as a spec is."""
    rates = [round(0.001 * (i + 1), 3) for i in range(101)]
    data = {"name": "s", "grids": [{"model": ["resnet8"], "recipe.lr": rates}], "seeds": 1,
            "recipe": {"iterations": 10, "milestones": [5]}}
    with pytest.raises(ValueError, match="100,000"):
        parse_spec(data | {"seeds": 1000})
    sweep = SweepDir(tmp_path / "s")
    sweep.materialize(parse_spec(data))
    assert main(["extend", str(sweep.root), "--seeds", "1000", "--dry-run"]) == 2
    assert "101,000 trials, more than the cap of 100,000" in one_line_error(capsys)


# 4. `submit --out` into a folder of the user's own that holds a file named sweep.json

def test_submit_leaves_a_users_folder_with_a_sweep_json_alone(tmp_path, capsys, cifar10_dir):
    users = tmp_path / "project"
    users.mkdir()
    (users / "spec.yaml").write_text(SPEC)
    (users / "sweep.json").write_text('{"my": "notes"}')
    assert main(["submit", str(users / "spec.yaml"), "--out", str(users), "--data-dir", str(cifar10_dir)]) == 2
    assert "holds files that are not a sweep's" in one_line_error(capsys)
    assert sorted(p.name for p in users.iterdir()) == ["spec.yaml", "sweep.json"]
    assert (users / "spec.yaml").read_text() == SPEC and (users / "sweep.json").read_text() == '{"my": "notes"}'


# 6. An interrupted first submit leaves a folder the next submit continues

def test_an_interrupted_first_submit_is_continued_by_the_next(tmp_path, monkeypatch, capsys):
    from ghostsweep.orchestrator.cli.submit import _check_sweep_folder

    sweep = SweepDir(tmp_path / "s")
    spec = parse_spec({"name": "s", "grids": [{"model": ["resnet8"]}], "seeds": 2,
                       "recipe": {"iterations": 10, "milestones": [5]}})

    def interrupted(index: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the trial folders, before sweep.json

    monkeypatch.setattr(sweep, "write_index", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep.materialize(spec)
    assert (sweep.trials_root).is_dir() and not sweep.index_path.exists()
    _check_sweep_folder(SweepDir(sweep.root))  # `submit` takes it as the sweep's: no refusal
    assert main(["status", str(sweep.root)]) == 2
    assert "first submit stopped before writing sweep.json" in one_line_error(capsys)
    monkeypatch.undo()
    SweepDir(sweep.root).materialize(spec)
    assert SweepDir(sweep.root).trial_ids() == [t.trial_id() for t in spec.trials]


# 5. Labels from a hand-edited sweep.json reach report.md, the terminal and the plots as text

HOSTILE_LABEL = "resnet8 <script>alert(1)</script> a|b\nc $\\nope{$ \x1b[31mred &amp;"


def test_a_hostile_label_is_text_in_every_report(tmp_path, capsys):
    from ghostsweep.trials.trialdir import Outcome, TrialResult, write_result

    sweep = small_sweep(tmp_path / "s")
    for seed, trial_id in enumerate(sweep.trial_ids()):
        write_result(sweep.trial_dir(trial_id), TrialResult(
            status=Outcome.DONE, trial_id=trial_id, iterations=10, final_test_acc=90.0 + seed, wall_time_s=1.0,
            params=78_000, macs=12_000_000))
    index = json.loads(sweep.index_path.read_text())
    for entry in index["trials"].values():
        entry["label"] = HOSTILE_LABEL
    sweep.index_path.write_text(json.dumps(index))
    assert main(["report", str(sweep.root)]) == 0  # mathtext would stop it at `$\nope{$`
    terminal = capsys.readouterr().out
    assert "\x1b" not in terminal and "\nc $" not in terminal
    markdown = (sweep.root / "report.md").read_text()
    assert "<script>" not in markdown and "resnet8 &lt;script>alert(1)&lt;/script> a\\|b c $\\nope{$" in markdown
    assert "\x1b" not in markdown and "&amp;amp;" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len({line.count(" | ") for line in table}) == 1  # every row keeps its columns


def test_a_reason_or_node_with_escape_sequences_reaches_no_terminal(tmp_path, capsys):
    """Found by att25: a failed trial's reason and node (result.json, anyone's to edit) went to `status` and to
    `submit`'s events raw, so an escape sequence there cleared the screen or retitled the window."""
    from ghostsweep.orchestrator.monitor.progress import SubmitProgress
    from ghostsweep.trials.trialdir import Outcome, TrialResult, write_result

    sweep = small_sweep(tmp_path / "s")
    trial_id = sweep.trial_ids()[0]
    write_result(sweep.trial_dir(trial_id), TrialResult(
        status=Outcome.FAILED, trial_id=trial_id, reason="boom \x1b[2J\x1b]0;pwned\x07", node="n\x1b[31m1"))
    assert main(["status", str(sweep.root)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "boom \N{REPLACEMENT CHARACTER}[2J" in shown
    assert main(["status", str(sweep.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"][0]["reason"] == "boom \x1b[2J\x1b]0;pwned\x07"
    progress = SubmitProgress(sweep, [trial_id], live=False)
    events = progress._update(progress.views[trial_id], read_state(sweep.trial_dir(trial_id)), None)
    assert events and not any("\x1b" in event for event in events)


def _extend_seed_by_seed(root: Path, seeds: int, done: Any) -> None:
    from ghostsweep.orchestrator.submission.extend import apply_extension, plan_seeds

    try:
        for total in range(3, seeds + 1):
            apply_extension(SweepDir(root), plan_seeds(SweepDir(root), total))
    finally:
        done.set()


def _submit_until(root: Path, spec: dict[str, Any], done: Any) -> None:
    while not done.is_set():
        SweepDir(root).materialize(parse_spec(spec))


def test_extend_and_submit_at_once_lose_no_trial(tmp_path):
    """Issue 25, item 8, raced for real (the gap its first fix left): one process extends a seed at a time while two
    others submit the spec again as fast as they can; every seed extend added is in sweep.json, and every
    extension in extensions.json, at the end (without the lock, rewrites from stale reads drop some)."""
    sweep = small_sweep(tmp_path / "s")
    spec = json.loads(sweep.root.with_suffix(".yaml").read_text())
    context = multiprocessing.get_context("fork")
    done = context.Event()
    processes = [context.Process(target=_extend_seed_by_seed, args=(sweep.root, 8, done)),
                 *(context.Process(target=_submit_until, args=(sweep.root, spec, done)) for _ in range(2))]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    index = SweepDir(sweep.root).index()
    assert sorted(entry.seed for entry in index.trials.values()) == list(range(8))
    assert len(index.trial_ids) == 8 and len(SweepDir(sweep.root).extensions()) == 6


def test_a_cancelled_submission_unqueues_only_what_it_queued(tmp_path):
    """Issue 25, item 4, found still open by att25: a cancelled local `submit`, waiting for its running trials to
    save, cleared the trials it had queued that never started, and with them the queued.json a `rerun` had
    written since, so a second `cancel` found nothing of that rerun. Here `place` plays the cancel and the rerun."""
    from ghostsweep.orchestrator.backends.local import LocalBackend
    from ghostsweep.orchestrator.sweepdir.state import mark_queued, record_job_id

    class RerunDuringCancel(LocalBackend):
        def place(self, placement):
            placement.assign(placement.trials, "local:here:1", announce=False)
            for trial in placement.trials:  # cancelled; meanwhile a rerun queues the trial under its own job
                mark_queued(trial.trial_dir, "local")
                record_job_id(trial.trial_dir, "local:here:2")

    sweep = small_sweep(tmp_path / "s")
    RerunDuringCancel(Resources(gpus_per_trial=0)).submit(sweep, sweep.trial_refs(sweep.trial_ids()))
    assert {(state.state, state.job_id, state.attempt) for state in map(read_state, map(sweep.trial_dir,
            sweep.trial_ids()))} == {("queued", "local:here:2", 2)}


def test_updates_of_the_index_take_turns(tmp_path, monkeypatch):
    """While one command updates sweep.json, `extend` waits for it, then says so in one line: nothing written."""
    from ghostsweep.orchestrator.submission.extend import apply_extension, plan_seeds
    from ghostsweep.orchestrator.sweepdir import directory

    sweep = small_sweep(tmp_path / "s")
    before = sweep.index_path.read_bytes()
    extension = plan_seeds(sweep, 3)
    monkeypatch.setattr(directory, "LOCK_TIMEOUT_S", 0.3)
    with SweepDir(sweep.root).updating(), pytest.raises(ValueError, match="another ghostsweep command has been"):
        apply_extension(SweepDir(sweep.root), extension)
    assert sweep.index_path.read_bytes() == before and not (sweep.root / "extensions.json").exists()
    apply_extension(SweepDir(sweep.root), extension)  # once it is free
    assert len(SweepDir(sweep.root).trial_ids()) == 3
