"""GPU requests and binding, per-grid resources, bad nodes and status without accounting, on Slurm with stand-in
GPUs: our own two-node cluster (slurm/cluster.sh with GHOSTSWEEP_SLURM_GPUS=2, another prefix and port base than
the shared one), started once for this module and stopped at its end.

Slurm allocates the stand-in GPUs and sets SLURM_*_GPUS / CUDA_VISIBLE_DEVICES as on a GPU cluster; no CUDA runs
behind them, so trials fall back to the CPU. Where the point is what Slurm gave, not training, the trial is the
stand-in `slurm_fixtures:bound_trial` (it records the binding as the runner does); DDP and per-grid resources run
real tiny trials.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_slurm import CLUSTER, Cli, job_of, read, start_cluster, trial_dirs, wait_ended, wait_for

from ghostsweep.orchestrator.backends.private import private_dir
from ghostsweep.orchestrator.backends.slurm import SlurmBackend, SlurmOptions
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.spec.sweepspec import parse_spec
from ghostsweep.orchestrator.sweepdir.badnodes import find_bad_nodes
from ghostsweep.orchestrator.sweepdir.directory import SweepDir
from ghostsweep.trials.trialdir import Outcome, TrialResult

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm-gpu")]  # its own cluster: beside the shared one's tests

KNOBS = {"GHOSTSWEEP_SLURM_PREFIX": "/tmp/ghostsweep-slurm-gpu", "GHOSTSWEEP_SLURM_PORT_BASE": "7917",
         "GHOSTSWEEP_SLURM_NODES": "2", "GHOSTSWEEP_SLURM_GPUS": "2"}
TINY = {"recipe": {"iterations": 5, "milestones": [3, 4], "eval_interval": 5, "checkpoint_interval": 5,
                   "batch_size": 16},
        "data": {"val_size": 0, "test_size": 100}}
RESOURCES = {"gpus_per_trial": 1, "cpus_per_trial": 1, "mem_gb": 1, "time_limit_min": 20}
XID = "RuntimeError: CUDA error: unspecified launch failure (Xid 79: GPU has fallen off the bus)"


@pytest.fixture(scope="module")
def gpu_cluster() -> dict[str, str]:
    """The environment of our 2-node x 2-GPU cluster (SLURM_CONF included); stopped after the module."""
    env = os.environ | KNOBS
    env["SLURM_CONF"] = start_cluster(env)
    yield env
    subprocess.run(["bash", str(CLUSTER), "stop"], env=env, capture_output=True, timeout=300)


@pytest.fixture
def gcli(gpu_cluster: dict[str, str], cifar10_dir: Path, tmp_path: Path) -> Cli:
    """`ghostsweep` against the GPU cluster, both nodes idle (an earlier test's jobs may still be completing, and
    where Slurm places trials is what these tests check); trials are the binding stand-in unless a test says
    otherwise."""
    cli = Cli(tmp_path / "bin", cifar10_dir, gpu_cluster["SLURM_CONF"])
    cli.env |= {"GHOSTSWEEP_TRIAL_RUNNER": "slurm_fixtures:bound_trial", "BOUND_TRIAL_S": "5"}

    def idle() -> bool:
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=gpu_cluster, capture_output=True,
                               text=True, timeout=30).stdout.split("\n")
        return sorted(filter(None, nodes)) == ["node1 idle", "node2 idle"]

    wait_for(idle, 120, "both nodes of the GPU cluster to be idle", interval=1.0)
    return cli


def spec(path: Path, name: str, grids: list[dict], *, seeds: int = 1, resources: dict | None = None,
         options: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "grids": grids, "seeds": seeds, **TINY, "resources": RESOURCES | (resources or {}),
        "backend": {"name": "slurm", "options": {"signal_delay_s": 30} | (options or {})},
    }, sort_keys=False))
    return path


def bindings(sweep: Path) -> dict[str, dict]:
    """trial id -> its result.json (node, gpu_binding, and for the stand-in started_at/finished_at)."""
    return {d.name: read(d / "result.json") for d in trial_dirs(sweep)}


def gpus(binding: dict) -> set[str]:
    return set((binding["scheduler_gpus"] or "").split(",")) - {""}


def binding_table(results: dict[str, dict]) -> str:
    rows = [f"{'trial':40} {'rank':>4} {'node':6} {'slurm GPUs':10} {'CUDA_VISIBLE_DEVICES':20} gpu"]
    for trial_id, result in sorted(results.items()):
        for rank in result["gpu_binding"]:
            rows.append(f"{trial_id:40} {rank['rank']:>4} {rank['node']:6} {rank['scheduler_gpus']!s:10} "
                        f"{rank['cuda_visible_devices']!s:20} {rank['gpu']}")
    return "\n".join(rows)


# ---------------------------------------------------------------- no cluster


def test_grid_resources_override_the_top_level_ones(tmp_path):
    data = {"name": "g", "seeds": 1, "resources": {"mem_gb": 16, "time_limit_min": 360},
            "grids": [{"model": "resnet20"}, {"model": ["resnet1202", "resnet20"],
                                               "resources": {"mem_gb": 32, "time_limit_min": 4320}}]}
    parsed = parse_spec(data)
    by_model = {t.model: parsed.resources_for(t.trial_id()) for t in parsed.trials}
    assert (by_model["resnet20"].mem_gb, by_model["resnet20"].time_limit_min) == (16, 360)  # its first grid
    assert (by_model["resnet1202"].mem_gb, by_model["resnet1202"].time_limit_min) == (32, 4320)
    sweep = SweepDir(tmp_path / "g")
    sweep.materialize(parsed)  # sweep.json keeps them per report row, so the seeds `extend` adds share them
    index = sweep.index()
    assert {t.model: index.trial_resources(t.trial_id()) for t in parsed.trials} == by_model
    data["grids"][1]["resources"] = {"trials_per_gpu": 2, "gpus_per_trial": 2}
    with pytest.raises(ValueError, match=r"^grids\[1\]\.resources\.trials_per_gpu: packing"):
        parse_spec(data)


def test_bad_node_exclusion_switch(tmp_path):
    """`exclude_bad_nodes` (spec backend option, or `--backend-option exclude_bad_nodes=false`): on, every sbatch
    of the backend gets --exclude; off, none does, and the backend says it did not exclude."""
    on = SlurmBackend(Resources(**RESOURCES), SlurmOptions.parse({}))
    assert on.exclude_nodes(["node2"]) and on._executor(SweepDir(tmp_path)).parameters["exclude"] == "node2"
    off = SlurmBackend(Resources(**RESOURCES), SlurmOptions.parse({"exclude_bad_nodes": False}))
    assert not off.exclude_nodes(["node2"]) and "exclude" not in off._executor(SweepDir(tmp_path)).parameters
    with pytest.raises(ValueError, match="exclude_bad_nodes: must be true or false, got 'no'"):
        SlurmOptions.parse({"exclude_bad_nodes": "no"})


def test_bad_nodes_need_repeated_failures_not_of_the_trials_own_making():
    def failed(node: str, reason: str) -> TrialResult:
        return TrialResult(Outcome.FAILED, "t", reason=reason, node=node)

    results = [("a", failed("n1", XID)),
               ("b", failed("n1", "TrialInputError: runtime.device=cuda but no CUDA device is available")),
               ("c", failed("n2", XID)), ("d", failed("n2", "diverged at iteration 40")),
               ("e", failed("n3", "diverged at iteration 7")), ("f", failed("n3", "diverged at iteration 9")),
               ("g", TrialResult(Outcome.DONE, "g", node="n2")), ("h", None)]
    (bad,) = find_bad_nodes(results)
    assert (bad.node, bad.trial_ids) == ("n1", ("a", "b"))


# ---------------------------------------------------------------- the stand-in GPU cluster


def test_array_tasks_get_distinct_gpus_and_packed_trials_share_one(gcli, tmp_path):
    """Four 1-GPU trials and four trials packed two per GPU, at once on 2 nodes x 2 GPUs: trials that overlap in
    time on a node share a GPU exactly when they are packed into one array task, and then share exactly one."""
    grid = [{"model": "resnet20"}]
    gcli("submit", spec(tmp_path / "a.yaml", "a", grid, seeds=4), "--out", tmp_path / "a")
    gcli("submit", spec(tmp_path / "p.yaml", "p", grid, seeds=4, resources={"trials_per_gpu": 2}),
         "--out", tmp_path / "p")
    results = {}
    for sweep in (tmp_path / "a", tmp_path / "p"):
        assert {r["status"] for r in wait_ended(sweep, timeout=300, conf=gcli.env["SLURM_CONF"]).values()} == {"done"}
        results |= {(sweep.name, trial_id): r | {"job": job_of(sweep / "trials" / trial_id)}
                    for trial_id, r in bindings(sweep).items()}
    print(binding_table({f"{sweep}/{trial_id}": r for (sweep, trial_id), r in results.items()}))
    for result in results.values():
        (rank,) = result["gpu_binding"]
        assert len(gpus(rank)) == 1 and rank["cuda_visible_devices"] == rank["gpu"] == rank["scheduler_gpus"]
        assert rank["node"] == result["node"] in ("node1", "node2")
    overlapping = 0
    for (key, one), (other_key, other) in itertools.combinations(results.items(), 2):
        if one["node"] != other["node"] or one["finished_at"] <= other["started_at"] \
                or other["finished_at"] <= one["started_at"]:
            continue
        overlapping += 1
        packed_together = key[0] == other_key[0] == "p" and one["job"] == other["job"]
        shared = one["gpu_binding"][0]["gpu"] == other["gpu_binding"][0]["gpu"]
        assert shared == packed_together, (key, other_key, one["gpu_binding"], other["gpu_binding"])
    assert overlapping, "no two trials ran at once on one node: the test checked nothing"
    packs = {}
    for (sweep, _), result in results.items():
        if sweep == "p":
            packs.setdefault(result["job"], []).append((result["node"], result["gpu_binding"][0]["gpu"]))
    assert sorted(len(pack) for pack in packs.values()) == [2, 2]
    assert all(len(set(pack)) == 1 for pack in packs.values()), packs  # one node, one GPU per pack


def test_gres_override_is_honoured(gcli, tmp_path):
    """`gres: gpu:2` replaces the `--gpus-per-node` that gpus_per_trial=1 would ask for: the trial gets both."""
    gcli.env["BOUND_TRIAL_S"] = "1"
    sweep = tmp_path / "g"
    gcli("submit", spec(tmp_path / "g.yaml", "g", [{"model": "resnet20"}], options={"gres": "gpu:2"}),
         "--out", sweep)
    (result,) = wait_ended(sweep, timeout=300, conf=gcli.env["SLURM_CONF"]).values()
    (rank,) = result["gpu_binding"]
    assert gpus(rank) == {"0", "1"} and rank["cuda_visible_devices"] == "0,1", rank
    (script,) = private_dir(SweepDir(sweep), "slurm").glob("*_submission.sh")
    assert not (sweep / "slurm").exists()  # submitit's pickles are never in the shared sweep folder
    assert "#SBATCH --gres=gpu:2" in script.read_text() and "--gpus-per-node" not in script.read_text()


def test_ddp_trials_get_one_gpu_per_rank_with_per_grid_resources(gcli, tmp_path):
    """Real tiny trials: one grid asks 2 GPUs on one node (2 ranks), the other 4 GPUs on 2 nodes (4 ranks). Each
    rank records the GPU it uses: distinct within a node, every rank of the job accounted for; `plan` shows
    each variant's resources."""
    del gcli.env["GHOSTSWEEP_TRIAL_RUNNER"]
    grids = [{"model": "resnet8", "resources": {"gpus_per_trial": 2}},
             {"model": "ghost_resnet8", "resources": {"gpus_per_trial": 4, "nodes": 2}}]
    path = spec(tmp_path / "d.yaml", "d", grids)
    gcli.env["COLUMNS"] = "200"  # one table row per line
    plan = gcli("plan", path, "--out", tmp_path / "none").stdout
    assert "2 GPU, 1 CPU, 1 GB, 20 min" in plan and "4 GPU, 1 CPU, 1 GB, 20 min, 2 nodes" in plan, plan
    sweep = tmp_path / "d"
    gcli("submit", path, "--out", sweep)
    assert len(gcli.calls("sbatch")) == 2  # one placement per distinct resources
    results = wait_ended(sweep, timeout=600, conf=gcli.env["SLURM_CONF"])
    print(binding_table(results))
    by_model = {r["model"]: r for r in results.values()}
    for model, world, nodes in (("resnet8", 2, 1), ("ghost_resnet8", 4, 2)):
        result = by_model[model]
        assert result["status"] == "done" and result["world_size"] == world, result
        ranks = result["gpu_binding"]
        assert [rank["rank"] for rank in ranks] == list(range(world))
        per_node: dict[str, list[str]] = {}
        for rank in ranks:
            assert gpus(rank) == {"0", "1"} and rank["device"] == "cpu"  # stand-ins: CUDA does not run
            per_node.setdefault(rank["node"], []).append(rank["gpu"])
        assert len(per_node) == nodes and all(sorted(g) == ["0", "1"] for g in per_node.values()), per_node


def test_bad_node_is_reported_and_excluded_from_reruns(gcli, tmp_path):
    """node2's GPUs "fail" (the stand-in raises an Xid error there): its two trials fail, `status` names node2
    as bad, and `rerun --failed` keeps them off it (sbatch --exclude), so they finish on node1."""
    gcli.env |= {"FAIL_ON_NODE": "node2", "BOUND_TRIAL_S": "6"}
    sweep = tmp_path / "b"
    gcli("submit", spec(tmp_path / "b.yaml", "b", [{"model": "resnet20"}], seeds=4), "--out", sweep)
    first = wait_ended(sweep, timeout=300, conf=gcli.env["SLURM_CONF"])
    failed = sorted(t for t, r in first.items() if r["status"] == "failed")
    assert {first[t]["node"] for t in failed} == {"node2"} and len(failed) == 2, first
    status = json.loads(gcli("status", sweep, "--json").stdout)
    (warning,) = [w for w in status["warnings"] if w.startswith("bad node")]
    assert "bad node node2: 2 trial(s)" in warning and "later submissions exclude it" in warning, warning
    print(gcli("status", sweep).stdout)
    print(gcli("rerun", sweep, "--failed").stdout)
    wait_for(lambda: all(read(sweep / "trials" / t / "result.json").get("status") == "done" for t in failed),
             300, "the rerun trials to finish")
    assert {read(sweep / "trials" / t / "result.json")["node"] for t in failed} == {"node1"}
    scripts = sorted(private_dir(SweepDir(sweep), "slurm").glob("*_submission.sh"), key=lambda p: p.stat().st_mtime)
    assert "--exclude=node2" in scripts[-1].read_text() and "--exclude" not in scripts[0].read_text()
    assert "later submissions exclude it" in gcli("status", sweep).stdout  # remembered after the reruns succeeded



def test_status_without_accounting(gpu_cluster, gcli, tmp_path):
    """The same cluster with accounting off (GHOSTSWEEP_SLURM_ACCOUNTING=none: no slurmdbd, sacct fails): status
    makes one failed sacct call and one squeue call, says so once, and takes the rest from the sweep files.
    Runs last: it reconfigures the module's cluster."""
    start_cluster(gpu_cluster | {"GHOSTSWEEP_SLURM_ACCOUNTING": "none"})
    gcli.env["BOUND_TRIAL_S"] = "10"
    sweep = tmp_path / "n"
    gcli("submit", spec(tmp_path / "n.yaml", "n", [{"model": "resnet20"}], seeds=3,
                        options={"array_parallelism": 1}), "--out", sweep)
    wait_for(lambda: any(r.get("status") == "done" for r in bindings(sweep).values()), 300, "a first trial")
    before = {name: len(gcli.calls(name)) for name in ("sacct", "squeue")}
    done = gcli("status", sweep)
    print(done.stdout)
    assert done.stdout.count("sacct unavailable") == 1, done.stdout
    assert "one squeue call" in done.stdout
    assert {name: len(gcli.calls(name)) - before[name] for name in before} == {"sacct": 1, "squeue": 1}
    states = {t["state"] for t in gcli.status(sweep).values()}
    assert "done" in states and states <= {"done", "running", "queued"}, states
    gcli("cancel", sweep)
