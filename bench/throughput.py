"""Training throughput: our trial beside the reference loop on the same device, per model and configuration.

    python bench/throughput.py                                   # CPU: ResNet-20, eager and channels-last
    python bench/throughput.py --models resnet20 resnet56 --configs eager compiled --packed 2
    python bench/throughput.py --gpu-check --json gpu.json       # one GPU, under 8 minutes (GPU_CHECK below)
    python bench/throughput.py --gpu-check --synthetic-data      # the same where CIFAR-10 is not at hand
    python bench/throughput.py --from-results a.json b.json --write-estimates   # → orchestrator/throughput.json

What each side measures (batch 128, same model code, same device and torch threads; img/s of training only):
- reference: akamaster's loop. torchvision PIL transforms (flip, pad-4 crop, normalise) in a shuffled
  DataLoader with `--workers` processes, then forward, cross-entropy, backward, SGD step; eager fp32 NCHW.
  Timed from the end of its warm-up iterations to its last step (CUDA synchronised at both ends).
- trial: `python -m ghostsweep.orchestrator.submission.worker TRIAL_DIR...`, the very process a sweep runs, in
  the configuration;
  its own `images_per_s` (data order, on-device augmentation, forward, backward, SGD step, loss read-back
  every 20 iterations; evaluation and file writes excluded) over every eval period but the first (warm-up,
  compilation, CUDA graph capture). Packed: K trials in one worker, started together with equal work; the
  aggregate is the sum of their rates while all K are past their warm-up (see `packed_images_per_s`).
Rounds alternate between the loops, so a busy neighbour slows them alike; medians are reported.
Throughput does not depend on pixel values, so `--synthetic-data` (random images in CIFAR-10's on-disk layout)
measures the same where the dataset is not at hand.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]

from ghostsweep import model  # noqa: E402
from ghostsweep.orchestrator.backends.base import WORKER_MODULE  # noqa: E402
from ghostsweep.orchestrator.spec.plan import THROUGHPUT_FILE  # noqa: E402
from ghostsweep.trials import data as cifar  # noqa: E402
from ghostsweep.trials.config import DataConfig, Recipe, RuntimeConfig, TrialConfig  # noqa: E402

BATCH = 128
# Runtime configurations by name; `eager` is the faithful default. `fast` needs CUDA (CUDA graphs). `-dense` runs
# the Ghost modules' depthwise convs as block-diagonal dense convs (`runtime.depthwise`; no effect on ResNets).
_EAGER = {"compile": "off", "precision": "fp32", "channels_last": False, "deterministic": True, "depthwise": "grouped"}
_FAST = {"compile": "cudagraphs", "precision": "bf16", "channels_last": True, "deterministic": True,
         "depthwise": "grouped"}
CONFIGS: dict[str, dict[str, Any]] = {
    "eager": _EAGER,
    "channels-last": _EAGER | {"channels_last": True},
    "compiled": _EAGER | {"compile": "default"},
    "eager-dense": _EAGER | {"depthwise": "dense"},
    "fast": _FAST,
    "fast-autotune": _FAST | {"deterministic": False},
    "fast-dense": _FAST | {"depthwise": "dense"},
    "fast-dense-autotune": _FAST | {"depthwise": "dense", "deterministic": False},
}
# The GPU check, most informative first (what no earlier GPU run measured leads); jobs stop starting at
# GPU_BUDGET_S (the rest is reported as skipped) so that it fits an 8-minute slot. Packed jobs run
# PACKED_PERIODS_FACTOR times longer, so that the K trials, which finish compiling at different times, overlap for
# long enough.
GPU_JOBS = (
    ("ghost_resnet56", "reference"), ("ghost_resnet56", "fast-dense"), ("resnet56", "reference"),
    ("resnet56", "fast"), ("ghost_resnet56", "fast-dense", 8), ("resnet20", "reference"), ("resnet20", "fast"),
    ("resnet110", "reference"), ("resnet110", "fast"), ("ghost_resnet56", "fast-dense-autotune"),
    ("resnet56", "fast", 8), ("ghost_resnet56", "fast"), ("ghost_resnet56", "eager"), ("resnet56", "eager"),
    ("ghost_resnet56", "fast-autotune"), ("resnet56", "fast-autotune"),
)
GPU_BUDGET_S = 420.0
WARM_TIMEOUT_S = 240.0  # the parallel compile warm-up (`warm_compile_cache`) gets at most this, or half the budget
PACKED_PERIODS_FACTOR = 3
WORKER_OUTPUT = "worker-output.txt"  # in a job's folder, beside its trial directories


@dataclass(frozen=True)
class Job:
    model: str
    config: str  # a CONFIGS name, or "reference"
    packed: int = 1

    @property
    def label(self) -> str:
        return f"{self.config} x{self.packed}" if self.packed > 1 else self.config


class PilCifar10(Dataset):
    """torchvision.datasets.CIFAR10's __getitem__: uint8 HWC array → PIL image → transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: transforms.Compose) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def reference_images_per_s(name: str, dataset: cifar.Cifar10, iterations: int, warmup: int, workers: int,
                           device: torch.device) -> float:
    """akamaster's training loop, timed after `warmup` iterations."""
    transform = transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4), transforms.ToTensor(),
        transforms.Normalize(mean=cifar.IMAGENET_MEAN, std=cifar.IMAGENET_STD),
    ])
    loader = DataLoader(PilCifar10(dataset.train_images, dataset.train_labels, transform), batch_size=BATCH,
                        shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    net = model.build(name).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    net.train()
    done, started = 0, 0.0
    while done < warmup + iterations:
        for images, labels in loader:
            if done == warmup:
                _synchronize(device)
                started = time.perf_counter()
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == warmup + iterations:
                break
    _synchronize(device)
    return iterations * BATCH / (time.perf_counter() - started)


def trial_images_per_s(job: Job, data_dir: Path, device: str, threads: int, period: int, periods: int,
                       timeout_s: float, log: Path | None = None) -> float:
    """Aggregate img/s of `job.packed` trials (seeds 0..K-1) run by one sweep worker, after one warm-up period;
    the worker's output (compiler warnings included) is appended to `log`."""
    if job.packed > 1:
        periods *= PACKED_PERIODS_FACTOR
    with tempfile.TemporaryDirectory(prefix="ghostsweep-bench-") as root:
        worker, trial_dirs = _start_worker(job, Path(root), data_dir, device, threads, period, 1 + periods)
        _wait_for_worker(worker, Path(root), f"{job.model} {job.label}", timeout_s, log)
        rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in trial_dirs]
        if job.packed == 1:
            return _steady_rate(rows[0][1:], period)
        started = []  # each trial's start on the wall clock: result.json is written wall_time_s after it
        for trial_dir in trial_dirs:
            result = trial_dir / "result.json"
            started.append(result.stat().st_mtime - json.loads(result.read_text())["wall_time_s"])
        return packed_images_per_s(rows, started, period)


def warm_compile_cache(jobs: list[Job], data_dir: Path, device: str, threads: int, timeout_s: float,
                       log: Path | None = None) -> tuple[list[str], list[str]]:
    """Compile every compiled job's model once, all at the same time, before anything is timed.

    Cold, a compile takes about a minute per model and configuration; one after another they would eat a short
    GPU slot. Run in parallel (2 iterations each), they fill inductor's on-disk caches, so the timed jobs then
    compile in seconds. Returns the jobs warmed ("MODEL CONFIG") and the failures (a failed warm-up only leaves
    its job to compile cold).
    """
    distinct = list(dict.fromkeys(Job(job.model, job.config) for job in jobs
                                  if job.config != "reference" and CONFIGS[job.config]["compile"] != "off"))
    if not distinct:
        return [], []
    compile_threads = {"TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 1) // len(distinct)))}
    warmed, failed = [], []
    with tempfile.TemporaryDirectory(prefix="ghostsweep-warm-") as root:
        started = []
        for job in distinct:
            folder = Path(root) / f"{job.model}-{job.config}"
            worker, _ = _start_worker(job, folder, data_dir, device, threads, period=2, periods=1,
                                      extra_env=compile_threads)
            started.append((job, folder, worker))
        deadline = time.monotonic() + timeout_s
        for job, folder, worker in started:
            try:  # past the deadline every remaining worker is killed after a second
                _wait_for_worker(worker, folder, f"{job.model} {job.config} (compile warm-up)",
                                 max(1.0, deadline - time.monotonic()), log)
                warmed.append(f"{job.model} {job.config}")
            except RuntimeError as error:
                failed.append(f"{job.model} {job.config}: {error}")
    return warmed, failed


def _start_worker(job: Job, root: Path, data_dir: Path, device: str, threads: int, period: int, periods: int,
                  extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, list[Path]]:
    """The sweep worker (the process a sweep runs) on K fresh trials of `periods` eval periods."""
    trial_dirs = []
    for seed in range(job.packed):
        config = TrialConfig(
            model=job.model, seed=seed,
            recipe=Recipe(iterations=period * periods, eval_interval=period, checkpoint_interval=10**9),
            data=DataConfig(val_size=0, test_size=1_000),  # no validation: an eval is only a metrics line
            runtime=RuntimeConfig(device=device, **CONFIGS[job.config]),
        )
        trial_dir = root / config.trial_id()
        trial_dir.mkdir(parents=True)
        (trial_dir / "config.json").write_text(json.dumps(config.to_dict() | {"trial_id": config.trial_id()}))
        trial_dirs.append(trial_dir)
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "GHOSTSWEEP_DATA_DIR": str(data_dir)}
    env |= extra_env or {}
    with open(root / WORKER_OUTPUT, "w") as output:  # a file, not a pipe: workers waited on later never block
        worker = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, *map(str, trial_dirs)],
                                  env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    return worker, trial_dirs


def _wait_for_worker(worker: subprocess.Popen, root: Path, title: str, timeout_s: float, log: Path | None) -> None:
    """Wait for the worker; on timeout kill it with its packed trials; append its output to `log`."""
    try:
        worker.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)  # the packed trials too: they are the worker's children
        worker.wait()
        raise RuntimeError(f"timed out after {timeout_s:.0f} s") from None
    finally:
        output = (root / WORKER_OUTPUT).read_text(errors="replace")
        if log is not None:
            with open(log, "a") as f:
                f.write(f"==== {title}\n{output}\n")
    if worker.returncode != 0:
        raise RuntimeError(f"worker exited {worker.returncode}: {output[-3000:]}")


def _steady_rate(rows: list[dict[str, Any]], period: int) -> float:
    """One trial's img/s over these eval periods, from each period's own training-time rate."""
    return len(rows) * period * BATCH / sum(period * BATCH / row["images_per_s"] for row in rows)


def packed_images_per_s(rows: list[list[dict[str, Any]]], started: list[float], period: int) -> float:
    """Aggregate img/s of packed trials: the sum of each trial's rate over its periods that lie wholly inside
    the window where every trial is past its first (warm-up) period and none has finished. Trials finish
    compiling at different times, so counting outside that window would credit a trial with a GPU it did not
    share. Without such a window: every steady image over the union of the steady spans (a lower bound)."""
    spans = [[(start + a["elapsed_s"], start + b["elapsed_s"]) for a, b in itertools.pairwise(trial_rows)]
             for start, trial_rows in zip(started, rows, strict=True)]
    window = (max(trial[0][0] for trial in spans), min(trial[-1][1] for trial in spans))
    inside = [[row for row, (a, b) in zip(trial_rows[1:], trial, strict=True) if window[0] <= a and b <= window[1]]
              for trial_rows, trial in zip(rows, spans, strict=True)]
    if all(inside):
        return sum(_steady_rate(trial_rows, period) for trial_rows in inside)
    images = sum(len(trial) for trial in spans) * period * BATCH
    return images / (max(trial[-1][1] for trial in spans) - min(trial[0][0] for trial in spans))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(jobs: list[Job], args: argparse.Namespace, budget_s: float | None) -> dict[str, Any]:
    """Run the jobs `args.repeats` times in alternating rounds; medians, with each trial's ratio to its reference."""
    torch.set_num_threads(args.threads)
    folder = cifar.resolve_data_dir(args.data_dir)
    dataset = cifar.load_cifar10(folder)
    device = torch.device(args.device)
    warmup = 10 if device.type == "cuda" else 2
    deadline = time.monotonic() + budget_s if budget_s else float("inf")
    report: dict[str, Any] = {
        "device": _device_name(device), "threads": args.threads, "torch": torch.__version__, "batch_size": BATCH,
        "reference_workers": args.workers, "date": datetime.date.today().isoformat(),
        "command": " ".join(sys.argv[1:]), "synthetic_data": args.synthetic_data,
    }
    samples: dict[tuple[str, str], list[float]] = {}
    skipped: list[str] = []
    failed: list[str] = []
    if args.warm_compile:
        started = time.monotonic()
        timeout_s = min(WARM_TIMEOUT_S, (deadline - started) / 2)
        warmed, warm_failed = warm_compile_cache(jobs, folder, args.device, args.threads, timeout_s, args.worker_log)
        report["warm_compile"] = {"jobs": warmed, "failed": warm_failed, "seconds": time.monotonic() - started}
        print(f"  compiler caches warmed in {report['warm_compile']['seconds']:.0f} s: {', '.join(warmed)}"
              + "".join(f"\n  warm-up failed: {line}" for line in warm_failed), flush=True)
    for _ in range(args.repeats):
        for job in jobs:
            left = deadline - time.monotonic()
            if left < 30:
                skipped.append(f"{job.model} {job.label}")
                continue
            try:
                if job.config == "reference":
                    rate = reference_images_per_s(job.model, dataset, args.period * args.periods, warmup,
                                                  args.workers, device)
                else:
                    rate = trial_images_per_s(job, folder, args.device, args.threads, args.period, args.periods,
                                              min(left, 3600), args.worker_log)
            except Exception as error:  # noqa: BLE001  (one failed configuration must not lose the others)
                failed.append(f"{job.model} {job.label}: {type(error).__name__}: {error}")
                print(f"  {job.model:16} {job.label:16} failed: {error}", flush=True)
                continue
            samples.setdefault((job.model, job.label), []).append(rate)
            print(f"  {job.model:16} {job.label:16} {rate:10.1f} img/s", flush=True)
            if args.json:  # a slot cut short still leaves every finished measurement
                args.json.write_text(json.dumps(report | _summary(samples, skipped, failed), indent=2) + "\n")
    return report | _summary(samples, skipped, failed)


def _summary(samples: dict[tuple[str, str], list[float]], skipped: list[str], failed: list[str]) -> dict[str, Any]:
    results = []
    for (name, label), rates in samples.items():
        reference = samples.get((name, "reference"))
        rate = statistics.median(rates)
        results.append({"model": name, "config": label, "images_per_s": rate, "rounds": len(rates),
                        "ratio": rate / statistics.median(reference) if reference else None})
    return {"results": results, "skipped": skipped, "failed": failed}


def print_table(report: dict[str, Any]) -> None:
    data = "synthetic data" if report.get("synthetic_data") else "CIFAR-10"
    print(f"\n{report['device']}, {report['threads']} thread(s), batch {report['batch_size']}, "
          f"torch {report['torch']}, {data}, reference DataLoader with {report['reference_workers']} workers "
          "(medians)")
    print(f"{'model':16} {'configuration':16} {'img/s':>10} {'vs reference':>13}")
    for row in report["results"]:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        print(f"{row['model']:16} {row['config']:16} {row['images_per_s']:10.1f} {ratio:>13}")
    if report["skipped"]:
        print(f"skipped (time budget): {', '.join(report['skipped'])}")
    for failure in report["failed"]:
        print(f"failed: {failure}")


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs on one kind of device as one report; each row keeps the ratio to its own run's reference."""
    devices = {report["device"] for report in reports}
    if len(devices) > 1:
        raise SystemExit(f"--from-results: the reports come from different devices: {', '.join(sorted(devices))}")
    if len(reports) == 1:
        return reports[0]
    rows = {(row["model"], row["config"]): row for report in reports for row in report["results"]}
    measured = {f"{name} {config}" for name, config in rows}
    return reports[-1] | {
        "command": " + ".join(f"[{report['command']}] ({report['date']}, torch {report['torch']})"
                              for report in reports),
        "synthetic_data": any(report.get("synthetic_data") for report in reports),
        "results": list(rows.values()),
        "skipped": sorted({job for report in reports for job in report["skipped"]} - measured),
        "failed": [line for report in reports for line in report["failed"]
                   if line.split(":")[0] not in measured],
    }


def estimates(report: dict[str, Any]) -> dict[str, Any]:
    """`orchestrator/throughput.json` from a report: img/s per configuration and model, as `plan` reads it."""
    single: dict[str, dict[str, float]] = {}
    packed: dict[str, dict[str, float]] = {}
    for row in report["results"]:
        rate = round(row["images_per_s"], 1)
        if row["config"] == "reference":
            continue
        (packed if " x" in row["config"] else single).setdefault(row["config"], {})[row["model"]] = rate
    models = sorted({name for table in single.values() for name in table})
    with torch.device("meta"):
        macs = {name: model.count_macs(model.build(name)) for name in models}
    return {
        "device": report["device"],
        "batch_size": report["batch_size"],
        "measured": "training images/s of one trial (data, forward, backward, SGD step; evaluation excluded)",
        "source": f"python bench/throughput.py {report['command']}" + (
            "" if " + " in report["command"] else f" ({report['date']}, torch {report['torch']})"),
        "scaling": "a model not listed gets its family's depth-56 value x reference_macs / MACs(model)",
        "configurations": {name: CONFIGS[name] for name in single},
        "synthetic_data": report.get("synthetic_data", False),
        "images_per_s": single,
        "packed_images_per_s": packed,
        "reference_images_per_s": {row["model"]: round(row["images_per_s"], 1)
                                   for row in report["results"] if row["config"] == "reference"},
        "reference_macs": macs,
    }


def write_synthetic_cifar10(root: Path) -> Path:
    """Random images and labels in CIFAR-10's on-disk layout (python pickles of uint8 rows)."""
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for name in (*cifar.TRAIN_FILES, cifar.TEST_FILE):
        data = torch.randint(0, 256, (cifar.IMAGES_PER_FILE, 3 * 32 * 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (cifar.IMAGES_PER_FILE,), generator=generator)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data.numpy(), "labels": labels.tolist()}, f)
    return folder


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="default: $GHOSTSWEEP_DATA_DIR, then the cache")
    parser.add_argument("--synthetic-data", action="store_true",
                        help="random images in CIFAR-10's layout (throughput does not depend on pixel values)")
    parser.add_argument("--models", nargs="+", default=["resnet20"])
    parser.add_argument("--configs", nargs="+", default=["eager", "channels-last"], choices=list(CONFIGS))
    parser.add_argument("--packed", type=int, nargs="*", default=[], metavar="K",
                        help="also run K trials of each configuration packed in one worker")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each loop (per packed trial)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    parser.add_argument("--period", type=int, default=10, help="iterations per measured period")
    parser.add_argument("--periods", type=int, default=3, help="measured periods (after one warm-up period)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    parser.add_argument("--gpu-check", action="store_true",
                        help=f"CUDA: {', '.join(' '.join(map(str, job)) for job in GPU_JOBS)}; one round, "
                             f"stops starting jobs after {GPU_BUDGET_S:.0f} s")
    parser.add_argument("--jobs", nargs="+", metavar="MODEL:CONFIG[:K]",
                        help="with --gpu-check: these jobs instead of the full list, e.g. resnet56:reference "
                             "resnet56:fast:8")
    parser.add_argument("--budget-s", type=float, default=GPU_BUDGET_S,
                        help="with --gpu-check: start no job after this many seconds (default %(default)s)")
    parser.add_argument("--warm-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="first compile every compiled configuration at once, so the timed jobs find "
                             "inductor's caches warm (default: on with --gpu-check)")
    parser.add_argument("--json", type=Path, help="write the results here (after every measurement)")
    parser.add_argument("--worker-log", type=Path, help="append every trial worker's output here")
    parser.add_argument("--from-results", type=Path, nargs="+", metavar="JSON",
                        help="skip measuring: read --json files instead (of one device; a later file's row "
                             "replaces an earlier one's)")
    parser.add_argument("--write-estimates", type=Path, nargs="?", const=THROUGHPUT_FILE, metavar="FILE",
                        help=f"store the img/s for `ghostsweep plan` (default {THROUGHPUT_FILE.relative_to(REPO)})")
    args = parser.parse_args()

    if args.from_results:
        report = merge_reports([json.loads(path.read_text()) for path in args.from_results])
    else:
        if args.gpu_check:
            args.device, args.repeats, args.workers, args.period, args.periods = "cuda", 1, 4, 25, 8
            jobs = [Job(*job) for job in GPU_JOBS]
            if args.jobs:
                jobs = [Job(name, config, int(k or 1)) for name, config, k in
                        (f"{job}::".split(":")[:3] for job in args.jobs)]
            args.threads = max(1, (os.cpu_count() or 2) // max(job.packed for job in jobs))
            args.warm_compile = args.warm_compile is not False
        else:
            jobs = [Job(name, "reference") for name in args.models]
            jobs += [Job(name, config, k) for name in args.models for k in [1, *args.packed] for config in args.configs]
        with tempfile.TemporaryDirectory(prefix="ghostsweep-synthetic-") as synthetic:
            if args.synthetic_data:
                args.data_dir = write_synthetic_cifar10(Path(synthetic))
            report = measure(jobs, args, args.budget_s if args.gpu_check else None)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.write_estimates:
        args.write_estimates.write_text(json.dumps(estimates(report), indent=2) + "\n")
        print(f"wrote {args.write_estimates}")


if __name__ == "__main__":
    main()
