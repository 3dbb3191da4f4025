"""Training throughput: a trial vs an akamaster-style loop (PIL + DataLoader), same model, in one run.

    python bench/trial_throughput.py --data-dir ../shared/data [--model resnet20] [--threads 1]

Both loops train with SGD at batch 128 on the same device and thread count; both include their data pipeline.
The trial's number is its own `images_per_s` (training time only, evaluations excluded); the reference
loop is timed here. Both skip two warm-up iterations.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import model  # noqa: E402
from trials import data as cifar  # noqa: E402
from trials.config import DataConfig, Recipe, RuntimeConfig, TrialConfig  # noqa: E402
from trials.runner import run_trial  # noqa: E402


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


def akamaster_images_per_s(name: str, dataset: cifar.Cifar10, iterations: int, workers: int,
                           device: torch.device) -> float:
    transform = transforms.Compose([
        transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4), transforms.ToTensor(),
        transforms.Normalize(mean=cifar.IMAGENET_MEAN, std=cifar.IMAGENET_STD),
    ])
    loader = DataLoader(PilCifar10(dataset.train_images, dataset.train_labels, transform), batch_size=128,
                        shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    net = model.build(name).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    net.train()
    warmup, done, started = 2, 0, 0.0
    while done < iterations + warmup:
        for images, labels in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == iterations + warmup:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations * 128 / (time.perf_counter() - started)


def trial_images_per_s(
    name: str, data_dir: Path, iterations: int, device: str, channels_last: bool, warmup: int = 2
) -> float:
    """The trial's own images_per_s, over the eval periods after the first `warmup` iterations."""
    config = TrialConfig(
        model=name, recipe=Recipe(iterations=warmup + iterations, eval_interval=warmup),
        data=DataConfig(val_size=0, test_size=1_000), runtime=RuntimeConfig(device=device, channels_last=channels_last),
    )  # no validation set: an "eval" is only a metrics line, until the test evaluation at the end
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        result = run_trial(config, Path(out), data_dir)
        assert result["status"] == "done", result
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(warmup * 128 / row["images_per_s"] for row in rows[1:])
    return (len(rows) - 1) * warmup * 128 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, help="default: $GHOSTSWEEP_DATA_DIR, then the cache")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = cifar.resolve_data_dir(args.data_dir)
    dataset = cifar.load_cifar10(folder)
    runs: dict[str, list[float]] = {"trial": [], "trial --channels-last": [], "akamaster": []}
    for _ in range(args.repeats):  # alternate, so that a busy neighbour slows every loop alike
        runs["trial"].append(trial_images_per_s(args.model, folder, args.iterations, args.device, False))
        runs["trial --channels-last"].append(
            trial_images_per_s(args.model, folder, args.iterations, args.device, True))
        runs["akamaster"].append(
            akamaster_images_per_s(args.model, dataset, args.iterations, args.workers, torch.device(args.device)))
    median = {name: statistics.median(values) for name, values in runs.items()}
    print(f"{args.model} on {args.device}, {args.threads} threads, batch 128, {args.iterations} iterations "
          f"× {args.repeats} alternating rounds (medians)")
    print(f"trial (faithful defaults: fp32, NCHW, eager): {median['trial']:8.1f} img/s")
    print(f"trial --channels-last:                        {median['trial --channels-last']:8.1f} img/s")
    print(f"akamaster-style (PIL + DataLoader, {args.workers} workers):  {median['akamaster']:8.1f} img/s")
    print(f"ratio trial / akamaster: {median['trial'] / median['akamaster']:.2f}x "
          f"(channels-last {median['trial --channels-last'] / median['akamaster']:.2f}x)")


if __name__ == "__main__":
    main()
