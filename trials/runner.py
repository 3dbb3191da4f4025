"""One trial: He et al.'s CIFAR-10 recipe, seeded, resumable to the bit, as 1 process or N DDP ranks.

The whole training step is in `_train`, top to bottom. Randomness comes from three streams derived from the
trial seed: `init` (weights), `order` (the permutation of epoch e) and `augment` (the crops and flips of
iteration i). Order and augmentation are pure functions of (seed, iteration), so the iteration *is* the
data-order position, and every rank draws the same global batch of `batch_size` and takes its own slice:
N ranks see exactly the images 1 rank sees.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ghostsweep import model as models
from ghostsweep.trials import data as cifar
from ghostsweep.trials.checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.distributed import (
    Distributed,
    all_reduce_sum,
    convert_sync_batchnorm,
    detect,
    init_process_group,
)
from ghostsweep.trials.files import (
    atomic_write_json,
    atomic_write_lines,
    read_json,
    read_lines,
    remove_stale_temporaries,
)
from ghostsweep.trials.stop import StopRequest
from ghostsweep.trials.wandb_log import WandbLogger

SYNC_INTERVAL = 20  # iterations between host syncs: divergence check, stop agreement across ranks
HEARTBEAT_S = 10.0
EVAL_BATCH = 250  # large enough for a GPU, small enough to stay in a CPU's cache


class TrialInputError(ValueError):
    """The trial cannot start as asked (bad config for this world, unwritable output, wrong directory)."""


class InjectedFailure(RuntimeError):
    """`faults.fail_at_iteration` fired (a test hook)."""


def derive_seed(seed: int, stream: str, index: int = 0) -> int:
    """Independent 63-bit seeds for each random stream of a trial."""
    digest = hashlib.sha256(f"ghostsweep/{seed}/{stream}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def learning_rate(config: TrialConfig, iteration: int) -> float:
    """Warm-up lr for the first iterations (He et al. for depth >= 110), then lr ÷ 10 at each milestone."""
    recipe = config.recipe
    if iteration < config.warmup_iterations:
        return recipe.warmup_lr
    return recipe.lr * recipe.lr_decay ** sum(iteration >= m for m in recipe.milestones)


@dataclass
class Progress:
    """Everything besides model and optimizer that a resumed trial needs to continue bit for bit."""

    iteration: int = 0
    elapsed_s: float = 0.0
    period_loss: float = 0.0  # train loss/accuracy sums since the last eval, per iteration, in order
    period_correct: int = 0
    period_images: int = 0
    period_train_s: float = 0.0
    best_val_acc: float | None = None
    best_val_iteration: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    wandb_run_id: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def run_trial(
    config: TrialConfig, out_dir: Path, data_dir: Path | None = None, *,
    download: bool | None = None, stop_event: StopRequest | None = None,
) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one trial in `out_dir`.

    Bad input raises a ValueError (`TrialInputError`, `trials.data.DataError`) before the trial starts; every
    other end writes result.json and returns it. A set `stop_event` checkpoints and ends it "interrupted"; callers
    tie it to SIGUSR2/SIGTERM with `trials.stop.request_stop_on_signals` before anything slow, as `ghostsweep
    train` and the sweep worker do. `download=None` defers to $GHOSTSWEEP_DOWNLOAD.
    """
    out_dir = Path(out_dir)
    world = detect()
    device = _resolve_device(config.runtime.device, world)
    _check_inputs(config, out_dir, world, device)
    if (out_dir / "result.json").exists():
        previous = read_json(out_dir / "result.json")
        if previous.get("status") == "done" and previous.get("trial_id") == config.trial_id():
            return previous
    folder = cifar.resolve_data_dir(data_dir, download)
    dataset = cifar.load_cifar10(folder)
    created_group = init_process_group(world, device)
    stop = stop_event or StopRequest()
    try:
        return _train(config, out_dir, dataset, world, device, stop)
    except Exception as error:  # noqa: BLE001  (a failure before the loop, e.g. an unreadable checkpoint)
        result = {"status": "failed", "reason": _reason(error), "trial_id": config.trial_id(),
                  "variant": config.variant, "model": config.model, "seed": config.seed}
        if world.is_main:
            atomic_write_json(out_dir / "result.json", result)
        return result
    finally:
        if created_group:
            dist.destroy_process_group()


def _train(
    config: TrialConfig, out_dir: Path, dataset: cifar.Cifar10, world: Distributed, device: torch.device,
    stop: StopRequest,
) -> dict[str, Any]:
    started = time.time()
    recipe, runtime = config.recipe, config.runtime
    checkpoint_path = out_dir / "checkpoint.pt"
    if world.is_main:
        remove_stale_temporaries(out_dir)
        if not (out_dir / "config.json").exists():
            atomic_write_json(out_dir / "config.json", config.to_dict() | {"trial_id": config.trial_id()})
    attempt = _next_attempt(out_dir) if world.is_main else 0
    _configure_backends(runtime.precision, runtime.deterministic, device)

    # Data: the split is fixed by the split seed, shared by every trial of a sweep.
    train_idx, val_idx = cifar.split_indices(config.data.val_size, config.data.split_seed)
    split_hash = cifar.split_hash(train_idx, val_idx)
    train_images = dataset.train_images[train_idx].to(device)
    train_labels = dataset.train_labels[train_idx].to(device)
    val_images = dataset.train_images[val_idx].to(device)
    val_labels = dataset.train_labels[val_idx].to(device)
    test_images = dataset.test_images[:config.data.test_size].to(device)
    test_labels = dataset.test_labels[:config.data.test_size].to(device)
    normalize = cifar.Normalizer(config.data.normalization, train_images)
    batches_per_epoch = len(train_idx) // recipe.batch_size  # drop-last epochs: every batch is a full one
    per_rank = recipe.batch_size // world.world_size
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format

    # Model: weights from the seed's `init` stream, built on the CPU so every device starts identical.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = models.build(config.model, **config.model_options)
    complexity = models.complexity(net)  # the paper's MACs, whatever kernels run them
    if runtime.depthwise == "dense":
        models.densify_grouped_convs(net)
    if runtime.sync_bn:  # also on one rank, so that 1 rank and N ranks run the same arithmetic
        net = convert_sync_batchnorm(net, device)
    net = net.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )

    progress = Progress()
    if checkpoint_path.exists():
        progress = _restore(checkpoint_path, net, optimizer)
    elapsed_before = progress.elapsed_s  # wall time of earlier attempts
    if world.is_main:
        rows = read_lines(out_dir / "metrics.jsonl")
        progress.rows = [row for row in rows if row["iteration"] <= progress.iteration]  # drop evals past it
    train_model: nn.Module = net
    if world.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    if runtime.compile != "off":
        mode = "reduce-overhead" if runtime.compile == "cudagraphs" else None  # reduce-overhead = CUDA graphs
        train_model = torch.compile(train_model, mode=mode)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=runtime.precision == "bf16")

    def evaluate(images: torch.Tensor, labels: torch.Tensor) -> float | None:
        """Top-1 % on a full split, eval mode; ranks evaluate interleaved shards and sum their counts."""
        if len(labels) == 0:
            return None
        if world.enabled:
            for buffer in net.buffers():  # BN running stats of rank 0, so every rank evaluates one model
                dist.broadcast(buffer, 0)
        net.eval()
        correct = torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for start in range(world.rank * EVAL_BATCH, len(labels), world.world_size * EVAL_BATCH):
                x = normalize(images[start:start + EVAL_BATCH]).contiguous(memory_format=memory_format)
                correct += (net(x).argmax(1) == labels[start:start + EVAL_BATCH]).sum()
        net.train()
        return 100.0 * all_reduce_sum(correct, world).item() / len(labels)

    logger = WandbLogger(
        config.wandb, out_dir, name=config.trial_id(), group=config.variant,
        config=config.to_dict() | {
            "trial_id": config.trial_id(), "variant": config.variant, "params": complexity.params,
            "macs": complexity.macs, "split_hash": split_hash, "world_size": world.world_size,
            "device": _device_name(device),
        },
        resume_id=progress.wandb_run_id,
    ) if world.is_main else None
    if logger is not None:
        progress.wandb_run_id = logger.run_id

    def finish(status: str, reason: str | None, final: dict[str, Any]) -> dict[str, Any]:
        progress.elapsed_s = elapsed_before + time.time() - started
        result = {
            "status": status, "reason": reason, "trial_id": config.trial_id(), "variant": config.variant,
            "model": config.model, "seed": config.seed,
            "final_val_acc": final.get("val_acc"), "final_test_acc": final.get("test_acc"),
            "best_val_acc": progress.best_val_acc, "best_val_test_acc": final.get("best_val_test_acc"),
            "best_val_iteration": progress.best_val_iteration,
            "params": complexity.params, "macs": complexity.macs, "iterations": progress.iteration,
            "wall_time_s": progress.elapsed_s, "device": _device_name(device), "world_size": world.world_size,
            "torch_version": torch.__version__, "code_version": _code_version(), "attempt": attempt,
            "wandb_run_dir": logger.run_dir if logger else None, "compile": runtime.compile,
            "channels_last": runtime.channels_last, "precision": runtime.precision,
            "deterministic": runtime.deterministic, "depthwise": runtime.depthwise, "split_hash": split_hash,
        }
        if world.is_main:
            atomic_write_json(out_dir / "result.json", result)
            logger.finish({k: v for k, v in result.items() if v is not None}, exit_code=int(status != "done"))
        return result

    def save() -> None:
        if world.is_main:
            save_checkpoint(checkpoint_path, _checkpoint_state(net, optimizer, progress))

    def heartbeat(iteration: int, images_per_s: float) -> None:
        if world.is_main:
            atomic_write_json(out_dir / "progress.json", {
                "iteration": iteration, "iterations": recipe.iterations,
                "images_per_s": images_per_s, "updated_at": time.time(), "host": socket.gethostname(),
                "pid": os.getpid(),
            })

    heartbeat(progress.iteration, 0.0)
    last_heartbeat = time.time()
    images_per_s = 0.0
    window: list[torch.Tensor] = []  # per-iteration [loss, correct] not yet read back to the host
    period_start = time.perf_counter()
    fault = config.faults
    fault_armed = fault.fail_at_iteration is not None and (fault.times == 0 or attempt <= fault.times)

    try:
        for iteration in range(progress.iteration, recipe.iterations):
            # The global batch of this iteration (same on every rank), then this rank's slice of it.
            epoch, step = divmod(iteration, batches_per_epoch)
            order = _epoch_order(config.seed, epoch, len(train_idx))
            batch = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            augment_rng = torch.Generator().manual_seed(derive_seed(config.seed, "augment", iteration))
            augmentation = cifar.Augmentation.draw(recipe.batch_size, augment_rng)
            mine = slice(world.rank * per_rank, (world.rank + 1) * per_rank)
            augmentation = augmentation.slice(mine.start, mine.stop)
            drawn = torch.stack([batch[mine], augmentation.shift_y, augmentation.shift_x, augmentation.flip.long()])
            batch, shift_y, shift_x, flip = _to_device(drawn, device)
            images = normalize(train_images[batch])
            if config.data.augment:
                images = cifar.augment(images, cifar.Augmentation(shift_y, shift_x, flip.bool()))
            images = images.contiguous(memory_format=memory_format)
            labels = train_labels[batch]

            lr = learning_rate(config, iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                logits = train_model(images)
                loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            window.append(torch.stack([loss.detach().float(), (logits.argmax(1) == labels).sum().float()]))

            done = iteration + 1
            if fault_armed and done == fault.fail_at_iteration:
                raise InjectedFailure(f"injected failure at iteration {done}")
            at_eval = done % recipe.eval_interval == 0 or done == recipe.iterations
            at_checkpoint = done % recipe.checkpoint_interval == 0
            if time.time() - last_heartbeat >= HEARTBEAT_S:
                heartbeat(done, images_per_s)
                last_heartbeat = time.time()
            stopping = stop.is_set() and not world.enabled  # ranks agree on stopping at sync points only
            if not (done % SYNC_INTERVAL == 0 or at_eval or at_checkpoint or stopping):
                continue

            # Host sync: read the window back, stop on a non-finite loss, agree on a stop request.
            sums = all_reduce_sum(torch.stack(window), world).tolist()
            window.clear()
            first = done - len(sums) + 1
            for offset, (loss_sum, correct) in enumerate(sums):
                if not math.isfinite(loss_sum):
                    progress.iteration = first + offset
                    return finish("failed", f"diverged at iteration {first + offset}", {})
                progress.period_loss += loss_sum / world.world_size
                progress.period_correct += int(correct)
            progress.period_images += len(sums) * recipe.batch_size
            progress.iteration = done
            progress.elapsed_s = elapsed_before + time.time() - started
            now = time.perf_counter()
            progress.period_train_s += now - period_start
            images_per_s = progress.period_images / max(progress.period_train_s, 1e-9)
            stopping = bool(all_reduce_sum(torch.tensor(float(stop.is_set()), device=device), world).item())

            if at_eval:
                iterations_in_period = progress.period_images // recipe.batch_size
                row = {
                    "iteration": done, "lr": lr,
                    "train_loss": progress.period_loss / iterations_in_period,
                    "train_acc": 100.0 * progress.period_correct / progress.period_images,
                    "val_acc": evaluate(val_images, val_labels),
                    "images_per_s": images_per_s,
                    "elapsed_s": progress.elapsed_s,
                }
                if row["val_acc"] is not None and (progress.best_val_acc is None
                                                   or row["val_acc"] > progress.best_val_acc):
                    progress.best_val_acc, progress.best_val_iteration = row["val_acc"], done
                    progress.best_state = {k: v.detach().to("cpu", copy=True)
                                           for k, v in net.state_dict().items()}
                if done == recipe.iterations:
                    row["test_acc"] = evaluate(test_images, test_labels)
                progress.rows.append(row)
                if world.is_main:
                    print(_describe(row, recipe.iterations), flush=True)
                progress.period_loss, progress.period_correct, progress.period_images = 0.0, 0, 0
                progress.period_train_s = 0.0
                if world.is_main:
                    atomic_write_lines(out_dir / "metrics.jsonl", progress.rows)
                    logged = {k: v for k, v in row.items() if k != "iteration" and v is not None}
                    logger.log(logged, step=done)
            if at_checkpoint or stopping or done == recipe.iterations:
                save()
            if stopping:
                return finish("interrupted", f"stop requested at iteration {done}", {})
            period_start = time.perf_counter()

        final = dict(progress.rows[-1]) if progress.rows else {}
        if "test_acc" not in final:  # resumed from the final checkpoint: evaluate again
            final["test_acc"] = evaluate(test_images, test_labels)
        final["best_val_test_acc"] = None
        if progress.best_val_iteration == recipe.iterations:
            final["best_val_test_acc"] = final["test_acc"]
        elif progress.best_state is not None:  # the final checkpoint is written: the weights may be swapped
            net.load_state_dict(progress.best_state)
            final["best_val_test_acc"] = evaluate(test_images, test_labels)
        return finish("done", None, final)
    except Exception as error:  # noqa: BLE001  (every end is a result)
        return finish("failed", _reason(error), {})


def _describe(row: dict[str, Any], iterations: int) -> str:
    names = (("train", "train_acc"), ("val", "val_acc"), ("test", "test_acc"))
    accuracies = " ".join(f"{name} {row[key]:.2f}%" for name, key in names if row.get(key) is not None)
    return (f"iteration {row['iteration']}/{iterations} lr {row['lr']:g} loss {row['train_loss']:.4f} "
            f"{accuracies} {row['images_per_s']:.0f} img/s")


def _reason(error: BaseException) -> str:
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}" if not isinstance(error, InjectedFailure) else message


_ORDER_CACHE: dict[tuple[int, int, int], torch.Tensor] = {}


def _epoch_order(seed: int, epoch: int, size: int) -> torch.Tensor:
    """The permutation of epoch `epoch`: a function of (seed, epoch), cached for the current epoch only."""
    key = (seed, epoch, size)
    if key not in _ORDER_CACHE:
        if len(_ORDER_CACHE) > 8:
            _ORDER_CACHE.clear()
        generator = torch.Generator().manual_seed(derive_seed(seed, "order", epoch))
        _ORDER_CACHE[key] = torch.randperm(size, generator=generator)
    return _ORDER_CACHE[key]


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One pinned, non-blocking copy per iteration: a blocking host-to-GPU copy waits for the queued GPU work,
    so the host could not prepare and launch the next step while the GPU runs this one."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _checkpoint_state(net: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress) -> dict[str, Any]:
    return {
        "iteration": progress.iteration,
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "rng": rng_states(),
        "progress": {
            "elapsed_s": progress.elapsed_s, "period_loss": progress.period_loss,
            "period_correct": progress.period_correct, "period_images": progress.period_images,
            "period_train_s": progress.period_train_s, "best_val_acc": progress.best_val_acc,
            "best_val_iteration": progress.best_val_iteration, "wandb_run_id": progress.wandb_run_id,
        },
        "best_state": progress.best_state,
    }


def _restore(path: Path, net: nn.Module, optimizer: torch.optim.Optimizer) -> Progress:
    state = load_checkpoint(path)
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_states(state["rng"])
    return Progress(iteration=state["iteration"], best_state=state["best_state"], **state["progress"])


def _check_inputs(config: TrialConfig, out_dir: Path, world: Distributed, device: torch.device) -> None:
    """What makes a trial impossible, found before it starts (checked identically on every rank)."""
    if config.recipe.batch_size % world.world_size:
        raise TrialInputError(f"recipe.batch_size {config.recipe.batch_size} is not divisible by "
                              f"the world size {world.world_size}")
    if config.runtime.compile == "cudagraphs" and device.type != "cuda":
        raise TrialInputError("runtime.compile=cudagraphs needs a CUDA device")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}-{world.rank}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or error
        raise TrialInputError(f"output directory {out_dir} is not writable: {reason}") from None
    existing = out_dir / "config.json"
    if existing.exists():
        try:
            trial_id = read_json(existing).get("trial_id")
        except ValueError:
            trial_id = None
        if trial_id != config.trial_id():
            raise TrialInputError(
                f"{out_dir} holds trial {trial_id!r}, not {config.trial_id()!r}; use another --out"
            )


def _resolve_device(name: str, world: Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrialInputError("runtime.device=cuda but no CUDA device is available")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def _configure_backends(precision: str, deterministic: bool, device: torch.device) -> None:
    """fp32 is IEEE fp32 (the paper's); tf32 lets matmuls and convs use TF32; bf16 is autocast in the step.

    Deterministic cuDNN algorithms make same seed → same run on one GPU; autotuning may pick faster ones whose
    float sums differ run to run (rounding-level, like channels_last).
    """
    if device.type == "cuda":
        mode = "tf32" if precision == "tf32" else "ieee"
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def _next_attempt(out_dir: Path) -> int:
    path = out_dir / "attempts.json"
    attempt = (read_json(path) or {"attempt": 0})["attempt"] + 1
    atomic_write_json(path, {"attempt": attempt})
    return attempt


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


def _code_version() -> str:
    """The git commit of the code (with -dirty), else the installed package version."""
    repo = Path(__file__).resolve().parents[1]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        commit = git("rev-parse", "--short=12", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"ghostsweep {importlib.metadata.version('ghostsweep')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
