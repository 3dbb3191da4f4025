"""Training throughput: our trial beside the reference loop on the same device, per model and configuration.

    python bench/throughput.py                                   # CPU: ResNet-20, eager and channels-last
    python bench/throughput.py --models resnet20 resnet56 --configs eager compiled --packed 2
    python bench/throughput.py --gpu-check --json gpu.json       # one GPU, under 8 minutes (GPU_CHECK below)
    python bench/throughput.py --from-results gpu.json --write-estimates   # → orchestrator/throughput.json

What each side measures (batch 128, same model code, same device and torch threads; img/s of training only):
- reference: akamaster's loop. torchvision PIL transforms (flip, pad-4 crop, normalise) in a shuffled
  DataLoader with `--workers` processes, then forward, cross-entropy, backward, SGD step; eager fp32 NCHW.
  Timed from the end of its warm-up iterations to its last step (CUDA synchronised at both ends).
- trial: `python -m orchestrator.worker TRIAL_DIR...`, the very process a sweep runs, in the configuration;
  its own `images_per_s` (data order, on-device augmentation, forward, backward, SGD step, loss read-back
  every 20 iterations; evaluation and file writes excluded) over every eval period but the first (warm-up,
  compilation, CUDA graph capture). Packed: K trials in one worker, started together with equal work; the
  aggregate is the sum of their rates.
Rounds alternate between the loops, so a busy neighbour slows them alike; medians are reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
sys.path.insert(0, str(REPO))

import model  # noqa: E402
from orchestrator.plan import THROUGHPUT_FILE  # noqa: E402
from trials import data as cifar  # noqa: E402
from trials.config import DataConfig, Recipe, RuntimeConfig, TrialConfig  # noqa: E402

BATCH = 128
# Runtime configurations by name; `eager` is the faithful default. `fast` needs CUDA (CUDA graphs).
CONFIGS: dict[str, dict[str, Any]] = {
    "eager": {"compile": "off", "precision": "fp32", "channels_last": False},
    "channels-last": {"compile": "off", "precision": "fp32", "channels_last": True},
    "compiled": {"compile": "default", "precision": "fp32", "channels_last": False},
    "fast": {"compile": "cudagraphs", "precision": "bf16", "channels_last": True},
}
# The GPU check: each model's reference, eager and fast trial, plus 8 packed fast ResNet-56 trials, most
# important first, stopped at BUDGET_S (the rest is reported as skipped) so that it fits an 8-minute slot.
GPU_MODELS = ("resnet56", "ghost_resnet56", "resnet20", "resnet110")
GPU_PACKED = ("resnet56", "fast", 8)
GPU_BUDGET_S = 420.0


@dataclass
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
                       timeout_s: float) -> float:
    """Aggregate img/s of `job.packed` trials (seeds 0..K-1) run by one sweep worker, after one warm-up period."""
    with tempfile.TemporaryDirectory(prefix="ghostsweep-bench-") as root:
        trial_dirs = []
        for seed in range(job.packed):
            config = TrialConfig(
                model=job.model, seed=seed,
                recipe=Recipe(iterations=period * (1 + periods), eval_interval=period, checkpoint_interval=10**9),
                data=DataConfig(val_size=0, test_size=1_000),  # no validation: an eval is only a metrics line
                runtime=RuntimeConfig(device=device, **CONFIGS[job.config]),
            )
            trial_dir = Path(root) / config.trial_id()
            trial_dir.mkdir()
            (trial_dir / "config.json").write_text(json.dumps(config.to_dict() | {"trial_id": config.trial_id()}))
            trial_dirs.append(trial_dir)
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "GHOSTSWEEP_DATA_DIR": str(data_dir),
                            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        worker = subprocess.Popen([sys.executable, "-m", "orchestrator.worker", *map(str, trial_dirs)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = worker.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # the packed trials too: they are the worker's children
            worker.communicate()
            raise RuntimeError(f"timed out after {timeout_s:.0f} s") from None
        if worker.returncode != 0:
            raise RuntimeError(f"worker exited {worker.returncode}: {output[-3000:]}")
        rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in trial_dirs]
        if job.packed == 1:  # the trial's own training-time rate
            steady = rows[0][1:]
            return len(steady) * period * BATCH / sum(period * BATCH / row["images_per_s"] for row in steady)
        # Packed: every steady image over the union of the steady spans, in wall-clock time (a lower bound, exact
        # when the trials run in lockstep); result.json is written at wall_time_s, which dates each row.
        spans = []
        for trial_dir, trial_rows in zip(trial_dirs, rows, strict=True):
            finished = (trial_dir / "result.json").stat().st_mtime - json.loads(
                (trial_dir / "result.json").read_text())["wall_time_s"]
            spans.append((finished + trial_rows[0]["elapsed_s"], finished + trial_rows[-1]["elapsed_s"]))
        images = sum(len(trial_rows) - 1 for trial_rows in rows) * period * BATCH
        return images / (max(end for _, end in spans) - min(start for start, _ in spans))


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
    samples: dict[tuple[str, str], list[float]] = {}
    skipped: list[str] = []
    failed: list[str] = []
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
                                              min(left, 3600))
            except Exception as error:  # noqa: BLE001  (one failed configuration must not lose the others)
                failed.append(f"{job.model} {job.label}: {type(error).__name__}: {error}")
                print(f"  {job.model:16} {job.label:16} failed: {error}", flush=True)
                continue
            samples.setdefault((job.model, job.label), []).append(rate)
            print(f"  {job.model:16} {job.label:16} {rate:10.1f} img/s", flush=True)
    results = []
    for (name, label), rates in samples.items():
        reference = samples.get((name, "reference"))
        rate = statistics.median(rates)
        results.append({"model": name, "config": label, "images_per_s": rate, "rounds": len(rates),
                        "ratio": rate / statistics.median(reference) if reference else None})
    return {"device": _device_name(device), "threads": args.threads, "torch": torch.__version__, "batch_size": BATCH,
            "reference_workers": args.workers, "date": datetime.date.today().isoformat(),
            "command": " ".join(sys.argv[1:]), "results": results, "skipped": skipped, "failed": failed}


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['device']}, {report['threads']} thread(s), batch {report['batch_size']}, "
          f"torch {report['torch']}, reference DataLoader with {report['reference_workers']} workers (medians)")
    print(f"{'model':16} {'configuration':16} {'img/s':>10} {'vs reference':>13}")
    for row in report["results"]:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        print(f"{row['model']:16} {row['config']:16} {row['images_per_s']:10.1f} {ratio:>13}")
    if report["skipped"]:
        print(f"skipped (time budget): {', '.join(report['skipped'])}")
    for failure in report["failed"]:
        print(f"failed: {failure}")


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
        "source": f"python bench/throughput.py {report['command']} ({report['date']}, torch {report['torch']})",
        "scaling": "a model not listed gets its family's depth-56 value x reference_macs / MACs(model)",
        "configurations": {name: CONFIGS[name] for name in single},
        "images_per_s": single,
        "packed_images_per_s": packed,
        "reference_images_per_s": {row["model"]: round(row["images_per_s"], 1)
                                   for row in report["results"] if row["config"] == "reference"},
        "reference_macs": macs,
    }


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="default: $GHOSTSWEEP_DATA_DIR, then the cache")
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
                        help=f"CUDA: {', '.join(GPU_MODELS)} x reference/eager/fast, {GPU_PACKED[2]} packed "
                             f"fast {GPU_PACKED[0]}; one round, stops starting jobs after {GPU_BUDGET_S:.0f} s")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--from-results", type=Path, help="skip measuring: read a --json file instead")
    parser.add_argument("--write-estimates", type=Path, nargs="?", const=THROUGHPUT_FILE, metavar="FILE",
                        help=f"store the img/s for `ghostsweep plan` (default {THROUGHPUT_FILE.relative_to(REPO)})")
    args = parser.parse_args()

    if args.from_results:
        report = json.loads(args.from_results.read_text())
    else:
        if args.gpu_check:
            args.device, args.repeats, args.workers, args.period, args.periods = "cuda", 1, 4, 40, 3
            args.threads = max(1, (os.cpu_count() or 2) // GPU_PACKED[2])
            jobs = [Job(name, config) for name in GPU_MODELS for config in ("reference", "eager", "fast")]
            jobs.insert(3, Job(*GPU_PACKED))
        else:
            jobs = [Job(name, "reference") for name in args.models]
            jobs += [Job(name, config, k) for name in args.models for k in [1, *args.packed] for config in args.configs]
        report = measure(jobs, args, GPU_BUDGET_S if args.gpu_check else None)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.write_estimates:
        args.write_estimates.write_text(json.dumps(estimates(report), indent=2) + "\n")
        print(f"wrote {args.write_estimates}")


if __name__ == "__main__":
    main()
