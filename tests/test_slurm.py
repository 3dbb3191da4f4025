"""The slurm backend against the project's real local Slurm cluster (slurm/cluster.sh), on CPU with CIFAR-10.

Every sbatch/sacct/squeue/scancel the CLI runs goes through a logging wrapper first on PATH: real calls,
counted. Trials are tiny: a few dozen iterations on a 500-image val/test split, of ResNet-8 (ResNet-20 where a
trial must still be running when it is signalled, and in the smoke sweep, which keeps smoke.yaml's models). The
node-failure test starts its own two-node cluster (another prefix and port base) so it never disturbs
the shared one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ghostsweep.orchestrator.backends.base import JobPhase
from ghostsweep.orchestrator.backends.private import private_dir
from ghostsweep.orchestrator.backends.slurm import SlurmBackend, SlurmOptions, expand_job_ids
from ghostsweep.orchestrator.spec.resources import Resources
from ghostsweep.orchestrator.sweepdir.directory import SweepDir, TrialRef

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared/data/cifar-10-batches-py"
CLUSTER = REPO / "slurm/cluster.sh"
WRAPPED = ("sbatch", "sacct", "squeue", "scancel")
TINY = {
    "recipe": {"iterations": 30, "milestones": [15, 24], "eval_interval": 15, "checkpoint_interval": 5,
               "batch_size": 16},
    "data": {"val_size": 500, "test_size": 500},
    "runtime": {"device": "cpu"},
}
RESOURCES = {"cpus_per_trial": 1, "mem_gb": 1, "time_limit_min": 20}
COMPARED = ("iteration", "lr", "train_loss", "train_acc", "val_acc", "test_acc")  # not speed or wall time


def start_cluster(env: dict[str, str]) -> str:
    """`cluster.sh start` (idempotent) for the cluster that `env`'s knobs name; returns its SLURM_CONF."""
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (slurmd switches users)")
    if shutil.which("apt-get") is None and shutil.which("sinfo") is None:
        pytest.skip("no Slurm and no apt-get to install it")
    command = ["bash", str(CLUSTER)]
    done = subprocess.run([*command, "start"], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"slurm/cluster.sh start failed:\n{done.stderr[-3000:]}")
    env_sh = subprocess.run([*command, "env"], env=env, capture_output=True, text=True, check=True)
    return env_sh.stdout.strip().partition("SLURM_CONF=")[2]


@pytest.fixture(scope="session")
def slurm_conf() -> str:
    """The shared cluster, up; SLURM_CONF set for this process and everything it starts."""
    conf = start_cluster(dict(os.environ))
    os.environ["SLURM_CONF"] = conf
    return conf


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "data_batch_1").exists():
        pytest.skip(f"CIFAR-10 not found at {DATA}")
    return DATA


@pytest.fixture
def cli(slurm_conf: str, data_dir: Path, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "bin", data_dir)


class Cli:
    """`ghostsweep ...` in a subprocess whose Slurm client calls are logged (one line per call)."""

    def __init__(self, bin_dir: Path, data_dir: Path, slurm_conf: str | None = None) -> None:
        bin_dir.mkdir()
        self.bin_dir, self.log = bin_dir, bin_dir / "calls.log"
        for name in WRAPPED:
            real = shutil.which(name)
            assert real, f"{name} not on PATH"
            wrapper = bin_dir / name
            wrapper.write_text(f'#!/bin/sh\necho "{name} $*" >> {self.log}\nexec {real} "$@"\n')
            wrapper.chmod(0o755)
        self.env = os.environ | {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GHOSTSWEEP_DATA_DIR": str(data_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")])),
            "SLURM_CONF": slurm_conf or os.environ["SLURM_CONF"],
        }

    def __call__(self, *args: str | Path, check: int | None = 0, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "ghostsweep.orchestrator.cli", *map(str, args)], env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )
        if check is not None:
            assert done.returncode == check, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def calls(self, name: str) -> list[str]:
        """This Cli's invocations of `name` so far (jobs inherit PATH, so only client-side names count)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if line.split()[0] == name]

    def status(self, sweep: Path) -> dict[str, dict]:
        return {t["trial_id"]: t for t in json.loads(self("status", sweep, "--json").stdout)["trials"]}


def test_slurm_tests_run_one_at_a_time(request):
    """Under pytest-xdist, every test of the shared cluster is in one group (conftest.py), so one worker runs them
    in turn: a group added too late (after xdist read the groups) let them run at once, and the GPU module's
    cluster was stopped under a test of the other worker."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("not under pytest-xdist: every test runs in turn anyway")
    assert request.node.nodeid.endswith("@slurm"), request.node.nodeid


def write_spec(path: Path, name: str, *, seeds: int = 1, recipe: dict | None = None,
               resources: dict | None = None, options: dict | None = None, model: str = "resnet8") -> Path:
    spec = {
        "name": name, "grids": [{"model": [model]}], "seeds": seeds,
        "recipe": TINY["recipe"] | (recipe or {}), "data": TINY["data"], "runtime": TINY["runtime"],
        "resources": RESOURCES | (resources or {}), "backend": {"name": "slurm", "options": options or {}},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def trial_dirs(sweep: Path) -> list[Path]:
    return sorted((sweep / "trials").iterdir())


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 2.0,
             explain: Callable[[], str] | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{explain()}" if explain else ""))
        time.sleep(interval)


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def results(sweep: Path) -> dict[str, dict]:
    return {d.name: read(d / "result.json") for d in trial_dirs(sweep)}


def wait_ended(sweep: Path, timeout: float = 900, conf: str | None = None) -> dict[str, dict]:
    """Until every trial has a final result.json (done or failed); on a timeout, what the cluster (`conf`, else
    $SLURM_CONF) says, so that a failure in CI can be read from its log."""
    wait_for(lambda: all(r.get("status") in ("done", "failed") for r in results(sweep).values()),
             timeout, f"the trials of {sweep.name} to end",
             explain=lambda: cluster_state(conf or os.environ["SLURM_CONF"], sweep))
    return results(sweep)


def cluster_state(conf: str, sweep: Path) -> str:
    """The queue, the nodes, the trials' states and the controller log's tail."""
    def run(*command: str) -> str:
        try:
            done = subprocess.run(command, env=os.environ | {"SLURM_CONF": conf}, capture_output=True, text=True,
                                  timeout=20)
            return (done.stdout + done.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)

    log = Path(conf).parents[1] / "log/slurmctld.log"
    tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else ["(no slurmctld.log)"]
    return "\n".join([
        "squeue:", run("squeue", "-a", "-o", "%i %j %T %r %N"), "sinfo:", run("sinfo", "-N", "-o", "%N %T %E"),
        "trials:", *(f"  {name}: {r.get('status', '(no result)')}" for name, r in results(sweep).items()),
        f"{log}:", *tail,
    ])


def metrics(trial_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: row[k] for k in COMPARED if k in row} for row in rows]


def job_of(trial_dir: Path) -> str:
    return read(trial_dir / "queued.json")["job_id"]


def scheduler(env: dict[str, str], *args: str) -> str:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- pure helpers (no cluster)


def test_expand_job_ids():
    assert expand_job_ids("12_[0-2,5%2]") == ["12_0", "12_1", "12_2", "12_5"]
    assert expand_job_ids("12_3") == ["12_3"]
    assert expand_job_ids("12") == ["12"]


# ---------------------------------------------------------------- the real cluster


def test_bad_partition_fails_before_submitting(cli, tmp_path):
    spec = write_spec(tmp_path / "bad.yaml", "bad", options={"partition": "nopart"})
    done = cli("submit", spec, "--out", tmp_path / "sweep", check=2)
    assert done.stderr.count("\n") == 1 and "nopart" in done.stderr and "debug" in done.stderr, done.stderr
    assert cli.calls("sbatch") == []
    assert not (tmp_path / "sweep").exists()


def test_scale_1000_trials_few_scheduler_calls(cli, tmp_path):
    later = {"sbatch": {"begin": "now+1hour"}}  # nothing starts before the cancel
    spec = write_spec(tmp_path / "scale.yaml", "scale", seeds=1000, options=later)
    sweep = tmp_path / "sweep"
    started = time.time()
    cli("submit", spec, "--out", sweep)
    submitted_s = time.time() - started
    jobs = {job_of(d) for d in trial_dirs(sweep)}
    try:
        assert len(jobs) == 1000 and len({j.partition("_")[0] for j in jobs}) == 1  # one array
        assert 1 <= len(cli.calls("sbatch")) <= 5, cli.calls("sbatch")
        states = cli.status(sweep)
        sacct_calls = len(cli.calls("sacct"))
        assert sacct_calls <= 1, cli.calls("sacct")
        assert {t["state"] for t in states.values()} == {"queued"}
    finally:
        cli("cancel", sweep)
    assert len(cli.calls("scancel")) == 1
    print(f"1000 trials: submit {submitted_s:.1f} s, sbatch x{len(cli.calls('sbatch'))}, "
          f"status: sacct x{sacct_calls}")


def test_arrays_are_chunked_to_max_array_size(slurm_conf, tmp_path, monkeypatch):
    """Five trials with MaxArraySize 2 are three sbatch calls; submission is all or nothing per call."""
    sweep = tmp_path / "sweep"
    refs = [TrialRef(f"t{i}", sweep / "trials" / f"t{i}") for i in range(5)]
    for ref in refs:
        ref.trial_dir.mkdir(parents=True)
    backend = SlurmBackend(Resources(**RESOURCES), SlurmOptions(signal_delay_s=30))
    backend.validate()
    monkeypatch.setitem(backend.session.cluster, "MaxArraySize", "2")
    submissions = backend.submit(SweepDir(sweep), refs)
    try:
        parents = [s.job_id.partition("_")[0] for s in submissions]
        assert len(set(parents)) == 3 and parents[0] == parents[1] != parents[2]
    finally:
        backend.cancel(sorted(set(parents)))
    infos = backend.poll([s.job_id for s in submissions])
    assert set(infos) <= {s.job_id for s in submissions}


def test_status_falls_back_to_squeue_without_sacct(cli, tmp_path):
    sweep = tmp_path / "sweep"
    later = {"sbatch": {"begin": "now+1hour"}}  # stays queued
    cli("submit", write_spec(tmp_path / "f.yaml", "f", seeds=2, options=later), "--out", sweep)
    try:
        broken = f'#!/bin/sh\necho "sacct $*" >> {cli.log}\necho "sacct: down" >&2\nexit 1\n'
        (cli.bin_dir / "sacct").write_text(broken)
        done = cli("status", sweep, "--json")
        status = json.loads(done.stdout)
        assert any("falling back to squeue + heartbeats" in w for w in status["warnings"]), status["warnings"]
        assert "sacct" not in done.stderr, done.stderr
        assert len(cli.calls("sacct")) == 1 and len(cli.calls("squeue")) == 1
        assert {t["state"] for t in status["trials"]} <= {"queued", "running"}
    finally:
        cli("cancel", sweep)


def test_preemption_checkpoints_requeues_and_matches(cli, tmp_path):
    """`scancel --signal=USR2` mid-trial: checkpoint, requeue, resume; same metrics as without it."""
    recipe = {"iterations": 45, "milestones": [20, 35], "eval_interval": 15}  # ResNet-20: still running at USR2
    preempted = cli("submit", write_spec(tmp_path / "a.yaml", "a", recipe=recipe, model="resnet20"), "--out",
                    tmp_path / "a")
    cli("submit", write_spec(tmp_path / "b.yaml", "b", recipe=recipe, model="resnet20"), "--out", tmp_path / "b")
    (trial,) = trial_dirs(tmp_path / "a")
    assert job_of(trial) in preempted.stdout
    wait_for(lambda: (trial / "checkpoint.pt").exists(), 240, "the first checkpoint")
    subprocess.run(["scancel", "--signal=USR2", job_of(trial)], check=True)
    wait_for(lambda: read(trial / "result.json").get("status") == "interrupted"
             or read(trial / "attempts.json").get("attempt", 0) >= 2, 120, "the checkpoint after USR2")
    ended = wait_ended(tmp_path / "a") | wait_ended(tmp_path / "b")
    (reference,) = trial_dirs(tmp_path / "b")
    assert ended[trial.name]["status"] == "done"
    assert read(trial / "attempts.json")["attempt"] == 2
    assert metrics(trial) == metrics(reference)
    assert ended[trial.name]["final_test_acc"] == read(reference / "result.json")["final_test_acc"]


def test_real_timeout_requeues_and_finishes(cli, tmp_path):
    """time_limit_min=1, USR2 10 s before it: the trial (75 s of work, a stand-in so the machine's load
    cannot change how long it runs) stops at Slurm's own signal, is requeued, and finishes."""
    spec = write_spec(tmp_path / "t.yaml", "t", resources={"time_limit_min": 1},
                      options={"signal_delay_s": 10, "max_requeues": 4})
    cli.env |= {"GHOSTSWEEP_TRIAL_RUNNER": "slurm_fixtures:timed_trial", "TIMED_TRIAL_S": "75",
                "PYTHONPATH": cli.env["PYTHONPATH"]}
    cli("submit", spec, "--out", tmp_path / "sweep")
    (trial,) = trial_dirs(tmp_path / "sweep")
    ended = wait_ended(tmp_path / "sweep", timeout=400)
    assert ended[trial.name]["status"] == "done", ended
    assert read(trial / "work.json")["attempts"] >= 2
    job_files = private_dir(SweepDir(tmp_path / "sweep"), "slurm")
    assert "this job is timed-out" in (job_files / f"{job_of(trial)}_0_log.out").read_text()


def test_cancel_then_rerun_failed(cli, tmp_path):
    """Cancelled trials, one waiting and one running (it stops "interrupted" first), show failed (cancelled);
    status shows the running one's job and node; `rerun --failed` completes both, the running one resuming.
    The trial is the stand-in (15 s of work), so it is surely running when cancelled."""
    sweep = tmp_path / "sweep"
    spec = write_spec(tmp_path / "c.yaml", "c", seeds=2, options={"array_parallelism": 1})
    cli.env |= {"GHOSTSWEEP_TRIAL_RUNNER": "slurm_fixtures:timed_trial", "TIMED_TRIAL_S": "15",
                "PYTHONPATH": cli.env["PYTHONPATH"]}
    cli("submit", spec, "--out", sweep)
    first, second = trial_dirs(sweep)
    running, waiting = (first, second) if job_of(second).endswith("_1") else (second, first)
    wait_for(lambda: read(running / "work.json").get("done_s", 0) >= 2, 300, "the first trial to run")
    shown = cli.status(sweep)[running.name]
    node = scheduler(cli.env, "squeue", "-h", "-j", job_of(running), "-o", "%N").strip()
    assert (shown["state"], shown["job_id"], shown["node"]) == ("running", job_of(running), node), shown
    subprocess.run(["scancel", job_of(waiting), job_of(running)], check=True)
    for trial in (waiting, running):
        wait_for(lambda t=trial: cli.status(sweep)[t.name]["state"] == "failed", 90, f"{trial.name} to fail")
        assert cli.status(sweep)[trial.name]["reason"] == "cancelled"
    assert read(running / "result.json")["status"] == "interrupted"
    cli("rerun", sweep, "--failed")
    assert {r["status"] for r in wait_ended(sweep).values()} == {"done"}
    assert {t["state"] for t in cli.status(sweep).values()} == {"done"}
    assert read(running / "work.json")["attempts"] == 2


def test_packing_two_trials_share_one_array_task(cli, tmp_path):
    spec = write_spec(tmp_path / "p.yaml", "p", seeds=2, resources={"trials_per_gpu": 2})
    cli("submit", spec, "--out", tmp_path / "sweep")
    first, second = trial_dirs(tmp_path / "sweep")
    assert job_of(first) == job_of(second)
    assert {r["status"] for r in wait_ended(tmp_path / "sweep").values()} == {"done"}
    assert job_of(first) == job_of(second)


def test_job_ignores_modules_in_the_sweep_directory(cli, tmp_path):
    """Jobs run in SWEEP_DIR (--chdir) under `python -P`: a `ghostsweep.py`, `submitit.py` or `torch.py` there
    shadows neither submitit's bootstrap nor the worker. (`submit --out` refuses a folder of the user's own
    files, so the modules are dropped into the sweep once it exists, and `extend` submits the job that meets them.)"""
    sweep = tmp_path / "sweep"
    cli.env |= {"GHOSTSWEEP_TRIAL_RUNNER": "slurm_fixtures:timed_trial", "TIMED_TRIAL_S": "1"}
    cli("submit", write_spec(tmp_path / "s.yaml", "s"), "--out", sweep)
    wait_ended(sweep, timeout=300)
    for name in ("ghostsweep.py", "submitit.py", "torch.py"):
        (sweep / name).write_text(f"raise SystemExit('imported the shadowing {name}')\n")
    cli("extend", sweep, "--seeds", "2")
    ended = wait_ended(sweep, timeout=300)
    assert len(ended) == 2 and {r["status"] for r in ended.values()} == {"done"}, ended


def test_ddp_two_tasks_match_local_two_ranks(cli, tmp_path, data_dir):
    """A 2-task Slurm trial (gloo) and `torchrun --nproc-per-node 2` of the same config agree exactly."""
    spec = write_spec(tmp_path / "d.yaml", "d", options={"tasks_per_trial": 2})
    cli("submit", spec, "--out", tmp_path / "sweep")
    (trial,) = trial_dirs(tmp_path / "sweep")
    local = tmp_path / "local"
    config = {k: v for k, v in read(trial / "config.json").items() if k != "trial_id"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29731",
         "-m", "ghostsweep.trials", "train", "--config", str(tmp_path / "config.json"), "--out", str(local)],
        env=cli.env, check=True, capture_output=True, timeout=600,
    )
    ended = wait_ended(tmp_path / "sweep")
    assert ended[trial.name]["status"] == "done" and ended[trial.name]["world_size"] == 2
    assert metrics(trial) == metrics(local)


def test_smoke_sweep_matches_local_backend(cli, tmp_path):
    """sweeps/smoke.yaml's grid, seeds, resources and observation on Slurm, with TINY's recipe and data (its own
    200 iterations at batch 128 cost ~15 CPU-minutes here and test nothing more): all four trials finish, and the
    resnet20 seed-0 trial equals the same trial on the local backend."""
    smoke = yaml.safe_load((REPO / "sweeps/smoke.yaml").read_text())
    smoke |= {"recipe": TINY["recipe"], "data": TINY["data"]}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(smoke))
    sweep = tmp_path / "smoke"
    done = cli("submit", tmp_path / "smoke.yaml", "--backend", "slurm", "--out", sweep)
    assert "->" in done.stdout
    local_spec = smoke | {"grids": [{"model": ["resnet20"]}], "seeds": [0]}
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(local_spec))
    cli("submit", tmp_path / "local.yaml", "--out", tmp_path / "local")
    ended = wait_ended(sweep, timeout=600)
    assert {r["status"] for r in ended.values()} == {"done"} and len(ended) == 4
    (local_trial,) = trial_dirs(tmp_path / "local")
    assert metrics(sweep / "trials" / local_trial.name) == metrics(local_trial)
    assert ended[local_trial.name]["final_test_acc"] == read(local_trial / "result.json")["final_test_acc"]


@pytest.mark.slow
def test_node_failure_requeues_on_the_other_node(data_dir, tmp_path, monkeypatch):
    """Two-node cluster of its own: the running trial's node dies (slurmd and its jobs, SIGKILL); Slurm
    marks the job NODE_FAIL, which poll does not call final, and requeues it on the other node, where the
    trial resumes and finishes. The trial is the 25 s stand-in (progress saved each second) so that it is
    surely still running when its node dies; the real runner's resume is what the preemption test checks."""
    knobs = {"GHOSTSWEEP_SLURM_PREFIX": "/tmp/ghostsweep-slurm-nodefail",
             "GHOSTSWEEP_SLURM_PORT_BASE": "7817", "GHOSTSWEEP_SLURM_NODES": "2"}
    cluster_env = os.environ | knobs
    conf = start_cluster(cluster_env)
    cli = Cli(tmp_path / "bin", data_dir, conf)
    try:
        spec = write_spec(tmp_path / "n.yaml", "n")
        cli.env |= {"GHOSTSWEEP_TRIAL_RUNNER": "slurm_fixtures:timed_trial", "TIMED_TRIAL_S": "25",
                    "PYTHONPATH": cli.env["PYTHONPATH"]}
        cli("submit", spec, "--out", tmp_path / "sweep")
        (trial,) = trial_dirs(tmp_path / "sweep")
        job = job_of(trial)
        wait_for(lambda: read(trial / "work.json").get("done_s", 0) >= 3, 300, "the trial to run 3 s")
        node = scheduler(cli.env, "squeue", "-h", "-j", job, "-o", "%N").strip()
        on_node = scheduler(cli.env, "squeue", "-h", "-w", node, "-o", "%A").split()
        kill_node(Path(knobs["GHOSTSWEEP_SLURM_PREFIX"]), node, on_node)
        monkeypatch.setenv("SLURM_CONF", conf)
        backend = SlurmBackend(Resources(**RESOURCES))

        def requeued() -> bool:
            info = backend.poll([job]).get(job)
            assert info is None or not info.final, info  # NODE_FAIL included
            return info is not None and info.phase is JobPhase.ACTIVE and info.node not in (None, node)

        wait_for(requeued, 240, f"job {job} to run again on a node other than {node}", interval=3)
        ended = wait_ended(tmp_path / "sweep", timeout=400, conf=conf)
        assert ended[trial.name]["status"] == "done"
        history = scheduler(cli.env, "sacct", "-n", "-P", "-X", "-D", "-j", job, "-o", "State,NodeList")
        assert f"NODE_FAIL|{node}" in history, history
        assert read(trial / "work.json")["attempts"] == 2
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], env=cluster_env, capture_output=True, timeout=300)


def kill_node(prefix: Path, node: str, jobs: list[str]) -> None:
    """A node dies: SIGKILL its slurmd, the slurmstepds of its jobs and all their descendants."""
    doomed = [int((prefix / f"run/slurmd-{node}.pid").read_text())]
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        parent = _parent(stat)
        if parent is not None:
            children.setdefault(parent, []).append(int(stat.parent.name))
    todo = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline")
            if any(f"slurmstepd: [{job}.".encode() in _read(p) for job in jobs) and _runs_under(p.parent, prefix)]
    while todo:
        pid = todo.pop()
        doomed.append(pid)
        todo += children.get(pid, [])
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def _runs_under(process: Path, prefix: Path) -> bool:
    """A slurmstepd works in its cluster's folder: the other test clusters number their jobs from 1 too."""
    try:
        return Path(os.readlink(process / "cwd")).is_relative_to(prefix)
    except OSError:
        return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _parent(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None
