"""A colleague's spec and a shared sweep folder are untrusted input (issue 25, writing side): what they hold never
becomes a shell line of a job script, a write outside the sweep or through a planted link, or more trials than a
spec may plan; each refusal is one line, exit 2, nothing submitted or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_slurm import slurm_conf  # noqa: F401  (the fixture: the shared cluster, up)

from ghostsweep.orchestrator.backends.base import Session
from ghostsweep.orchestrator.backends.slurm import SlurmBackend, SlurmOptions, check_sbatch_parameters
from ghostsweep.orchestrator.cli import main
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir import badnodes
from ghostsweep.orchestrator.sweepdir.directory import SweepDir

SPEC = "name: tiny\ngrids:\n  - model: [resnet8]\nseeds: 1\nrecipe: {iterations: 10, milestones: [5]}\n"
SHELL_LINE = "x\ntouch /tmp/pwned-by-the-spec"


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ghostsweep: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def small_sweep(root: Path) -> SweepDir:
    sweep = SweepDir(root)
    sweep.materialize(parse_spec({"name": "s", "grids": [{"model": ["resnet8"]}], "seeds": 2,
                                  "recipe": {"iterations": 10, "milestones": [5]}}))
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


def test_every_sbatch_value_is_checked_where_the_job_script_is_made(tmp_path):
    """A sweep folder whose name holds a newline reaches `--chdir` and `--job-name`: refused, no script made."""
    backend = SlurmBackend(Resources(gpus_per_trial=0), SlurmOptions(), Session(cluster={"MaxArraySize": "1001"}))
    with pytest.raises(ValueError, match="control character"):
        backend._executor(tmp_path / "a\ntouch pwned")
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
