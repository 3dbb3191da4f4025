"""One trial: He et al.'s CIFAR-10 recipe, seeded, resumable to the bit, as 1 process or N DDP ranks.

`_train` is the loop, top to bottom: `_set_up` once; per iteration `_draw_batch` and `_step`; at each host sync
(every SYNC_INTERVAL iterations, each evaluation, each checkpoint, a stop) `_read_back` and `_agree_to_stop`,
then `_evaluate_and_log` and `_save`; `_finish` writes the result. The steps share one explicit `Trial`.

Randomness comes from three streams derived from the trial seed: `init` (weights), `order` (the permutation of
epoch e) and `augment` (the crops and flips of iteration i). Order and augmentation are pure functions of
(seed, iteration), so the iteration *is* the data-order position, and every rank draws the same global batch of
`batch_size` and takes its own slice: N ranks see exactly the images 1 rank sees.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ghostsweep import model as models
from ghostsweep.trials import data as cifar
from ghostsweep.trials.binding import gather_bindings, node_name
from ghostsweep.trials.checkpoint import load_latest, rng_states, save_checkpoint, set_rng_states
from ghostsweep.trials.config import TrialConfig
from ghostsweep.trials.distributed import (
    Distributed,
    all_reduce_sum,
    convert_sync_batchnorm,
    detect,
    init_process_group,
)
from ghostsweep.trials.files import MAX_RECORD_BYTES
from ghostsweep.trials.provenance import RESUMED_UNDER, clean, code_version
from ghostsweep.trials.stop import StopRequest
from ghostsweep.trials.trialdir import (
    ATTEMPTS_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    Outcome,
    ProgressRecord,
    TrialResult,
    atomic_write_json,
    atomic_write_lines,
    read_json,
    read_metrics,
    read_result,
    remove_stale_temporaries,
    set_aside,
    write_progress,
    write_result,
)
from ghostsweep.trials.wandb_log import WandbLogger, filter_fields, run_tags

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
    code_versions: list[str] = field(default_factory=list)  # the code the attempts trained under, a change each

    @property
    def images_per_s(self) -> float:
        """Training speed since the last eval: evaluation and checkpoint time are not training time."""
        return self.period_images / max(self.period_train_s, 1e-9)


@dataclass
class Data:
    """The three splits on the trial's device. The train/val split is fixed by the split seed, so every trial of
    a sweep shares it (`split_hash` proves it)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    normalize: cifar.Normalizer
    split_hash: str


@dataclass
class Trial:
    """What `_set_up` builds and every step takes: the fixed parts of the trial, and the `progress` they advance."""

    config: TrialConfig
    out_dir: Path
    world: Distributed
    device: torch.device
    data: Data
    net: nn.Module  # the weights, as evaluated and checkpointed
    train_model: nn.Module  # `net` as trained: wrapped in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    autocast: torch.autocast
    memory_format: torch.memory_format
    params: int  # the paper's parameter and MAC counts, whatever kernels run the model
    macs: int
    attempt: int  # 1 for the first start in this directory; 0 on ranks other than 0
    logger: WandbLogger | None  # rank 0 only
    progress: Progress
    started: float  # time.time() at the start of this attempt
    elapsed_before: float  # wall time of earlier attempts
    binding: list[dict[str, Any]] = field(default_factory=list)  # each rank's node and GPUs (trials.binding)
    note: str | None = None  # what this attempt worked around (a corrupt checkpoint set aside), for result.json

    def elapsed_s(self) -> float:
        return self.elapsed_before + time.time() - self.started


def run_trial(
    config: TrialConfig, out_dir: Path, data_dir: Path | None = None, *,
    download: bool | None = None, stop_event: StopRequest | None = None,
) -> TrialResult:
    """Run (or resume, or return the finished result of) one trial in `out_dir`.

    Bad input raises a ValueError (`TrialInputError`, `trials.data.DataError`) before the trial starts; every
    other end writes result.json and returns it. A set `stop_event` checkpoints and
    ends it "interrupted"; callers tie it to SIGUSR2/SIGTERM with `trials.stop.request_stop_on_signals` before
    anything slow, as `ghostsweep train` and the sweep worker do. `download=None` defers to $GHOSTSWEEP_DOWNLOAD.
    """
    out_dir = Path(out_dir)
    world = detect()
    device = _resolve_device(config.runtime.device, world)
    _check_inputs(config, out_dir, world, device)
    previous = read_result(out_dir)
    if previous is not None and previous.done and previous.trial_id == config.trial_id():
        return previous
    folder = cifar.resolve_data_dir(data_dir, download)
    dataset = cifar.load_cifar10(folder)
    created_group = init_process_group(world, device)
    stop = stop_event or StopRequest()
    try:
        return _train(config, out_dir, dataset, world, device, stop)
    except Exception as error:  # noqa: BLE001  (a failure before the loop, e.g. an unreadable checkpoint)
        result = TrialResult(status=Outcome.FAILED, trial_id=config.trial_id(), reason=_reason(error),
                             variant=config.variant, model=config.model, seed=config.seed, node=node_name(),
                             finished_at=time.time())
        if world.is_main:
            write_result(out_dir, result)
        return result
    finally:
        if created_group:
            dist.destroy_process_group()


def _train(
    config: TrialConfig, out_dir: Path, dataset: cifar.Cifar10, world: Distributed, device: torch.device,
    stop: StopRequest,
) -> TrialResult:
    trial = _set_up(config, out_dir, dataset, world, device)
    recipe = config.recipe
    _heartbeat(trial, trial.progress.iteration, 0.0)
    last_heartbeat, images_per_s = time.time(), 0.0
    window: list[torch.Tensor] = []  # per-iteration [loss, correct] not yet read back to the host
    period_start = time.perf_counter()
    try:
        for iteration in range(trial.progress.iteration, recipe.iterations):
            images, labels = _draw_batch(trial, iteration)
            window.append(_step(trial, iteration, images, labels))
            done = iteration + 1
            _inject_fault(trial, done)
            if time.time() - last_heartbeat >= HEARTBEAT_S:
                _heartbeat(trial, done, images_per_s)
                last_heartbeat = time.time()
            at_eval = done % recipe.eval_interval == 0 or done == recipe.iterations
            at_checkpoint = done % recipe.checkpoint_interval == 0 or done == recipe.iterations
            stopping = stop.is_set() and not world.enabled  # ranks agree on stopping at sync points only
            if not (done % SYNC_INTERVAL == 0 or at_eval or at_checkpoint or stopping):
                continue

            # Host sync: read the window back, end on a non-finite loss, agree on a stop request.
            if not _read_back(trial, window, done, period_start):
                return _finish(trial, Outcome.FAILED, f"diverged at iteration {trial.progress.iteration}")
            images_per_s = trial.progress.images_per_s
            stopping = _agree_to_stop(trial, stop)
            if at_eval:
                _evaluate_and_log(trial, done, images_per_s)
            if at_checkpoint or stopping:
                _save(trial)
            if stopping:
                return _finish(trial, Outcome.INTERRUPTED, f"stop requested at iteration {done}")
            period_start = time.perf_counter()
        return _finish(trial, Outcome.DONE, None, **_final_accuracies(trial))
    except Exception as error:  # noqa: BLE001  (every end is a result)
        return _finish(trial, Outcome.FAILED, _reason(error))


# Set-up: directory, data, model, optimizer, checkpoint, logger.


def _set_up(
    config: TrialConfig, out_dir: Path, dataset: cifar.Cifar10, world: Distributed, device: torch.device,
) -> Trial:
    """Restores the checkpoint before DDP broadcasts rank 0's weights, and before the logger resumes its run."""
    started = time.time()
    if world.is_main:
        remove_stale_temporaries(out_dir)
        if not (out_dir / CONFIG_FILE).exists():
            atomic_write_json(out_dir / CONFIG_FILE, config.to_dict() | {"trial_id": config.trial_id()})
    attempt = _next_attempt(out_dir) if world.is_main else 0
    _configure_backends(config.runtime.precision, config.runtime.deterministic, device)
    data = _load_data(config, dataset, device)
    memory_format = torch.channels_last if config.runtime.channels_last else torch.contiguous_format
    net, complexity = _build_net(config, device, memory_format)
    recipe = config.recipe
    optimizer = torch.optim.SGD(
        net.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    checkpoint, note = load_latest(out_dir)  # verified; a corrupt one is set aside, and the note says so
    try:
        rows = read_metrics(out_dir / METRICS_FILE)
    except ValueError as error:  # the evaluations before the checkpoint are lost: a fresh start recomputes them
        if world.enabled:  # ranks must agree on where they start: one rank renaming the file cannot tell them
            raise ValueError(f"unreadable {out_dir / METRICS_FILE} ({error}): move it aside and rerun") from None
        aside = set_aside(out_dir / METRICS_FILE)
        checkpoint, rows = None, []
        note = f"{METRICS_FILE} is unreadable (set aside as {aside.name}); started afresh to recompute it"
    progress = _restore(checkpoint, net, optimizer) if checkpoint is not None else Progress()
    _record_code_version(progress)
    if note and world.is_main:
        print(f"checkpoint: {note}", flush=True)
    # Every rank reads the rows, so that all of them agree whether the final test accuracy is still to evaluate
    # (an evaluation is collective); evaluations past the checkpoint are dropped: they will run again.
    progress.rows = [row for row in rows if row["iteration"] <= progress.iteration]
    train_model = _wrap_for_training(net, config, world, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.runtime.precision == "bf16")
    logger = WandbLogger(
        config.wandb, out_dir, name=config.trial_id(), group=config.wandb.run_group(config.variant),
        config=config.to_dict() | filter_fields(config) | {
            "trial_id": config.trial_id(), "params": complexity.params,
            "macs": complexity.macs, "split_hash": data.split_hash, "world_size": world.world_size,
            "device": _device_name(device),
        },
        tags=run_tags(config), resume_id=progress.wandb_run_id,
    ) if world.is_main else None
    if logger is not None:
        progress.wandb_run_id = logger.run_id
    return Trial(
        config=config, out_dir=out_dir, world=world, device=device, data=data, net=net, train_model=train_model,
        optimizer=optimizer, autocast=autocast, memory_format=memory_format, params=complexity.params,
        macs=complexity.macs, attempt=attempt, logger=logger, progress=progress, started=started,
        elapsed_before=progress.elapsed_s, binding=gather_bindings(world, device), note=note,
    )


def _load_data(config: TrialConfig, dataset: cifar.Cifar10, device: torch.device) -> Data:
    train_idx, val_idx = cifar.split_indices(config.data.val_size, config.data.split_seed)
    train_images = dataset.train_images[train_idx].to(device)
    return Data(
        train_images=train_images,
        train_labels=dataset.train_labels[train_idx].to(device),
        val_images=dataset.train_images[val_idx].to(device),
        val_labels=dataset.train_labels[val_idx].to(device),
        test_images=dataset.test_images[:config.data.test_size].to(device),
        test_labels=dataset.test_labels[:config.data.test_size].to(device),
        normalize=cifar.Normalizer(config.data.normalization, train_images),
        split_hash=cifar.split_hash(train_idx, val_idx),
    )


def _build_net(
    config: TrialConfig, device: torch.device, memory_format: torch.memory_format,
) -> tuple[nn.Module, models.Complexity]:
    """Weights from the seed's `init` stream, built on the CPU so every device starts identical; the complexity
    is counted before runtime rewrites (dense depthwise, sync BN), so it is the paper's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = models.build(config.model, **config.model_options)
    complexity = models.count_complexity(net)
    if config.runtime.depthwise == "dense":
        models.densify_grouped_convs(net)
    if config.runtime.sync_bn:  # also on one rank, so that 1 rank and N ranks run the same arithmetic
        net = convert_sync_batchnorm(net, device)
    return net.to(device, memory_format=memory_format), complexity


def _wrap_for_training(net: nn.Module, config: TrialConfig, world: Distributed, device: torch.device) -> nn.Module:
    """DDP across ranks, then torch.compile; `net` itself stays plain for evaluation and checkpoints."""
    train_model = net
    if world.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    if config.runtime.compile != "off":
        mode = "reduce-overhead" if config.runtime.compile == "cudagraphs" else None  # = CUDA graphs
        train_model = torch.compile(train_model, mode=mode)
    return train_model


def _record_code_version(progress: Progress) -> None:
    """This attempt's code (read as it starts: the modules are imported by now), added to the checkpoint's when
    it differs by commit, so that a trial resumed under other code records both (`trials.provenance`)."""
    current, previous = code_version(), progress.code_versions[-1:]
    if previous and clean(previous[0]) == clean(current):
        current = previous[0] if previous[0].endswith("-dirty") else current  # a dirty tree is kept in sight
        progress.code_versions[-1] = current
    else:
        progress.code_versions.append(current)


def _restore(state: dict[str, Any], net: nn.Module, optimizer: torch.optim.Optimizer) -> Progress:
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_states(state["rng"])
    return Progress(iteration=state["iteration"], best_state=state["best_state"], **state["progress"])


# Draw a batch: the global batch of an iteration, then this rank's slice of it.


def _draw_batch(trial: Trial, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (normalised, augmented) and labels of this rank's slice of the global batch of `iteration`.

    Indices and augmentation are drawn for the whole global batch on the CPU, the same on every rank, and sent
    to the device in one copy."""
    config, world, data = trial.config, trial.world, trial.data
    batch_size = config.recipe.batch_size
    epoch, step = divmod(iteration, len(data.train_labels) // batch_size)  # drop-last epochs: full batches only
    order = _epoch_order(config.seed, epoch, len(data.train_labels))
    batch = order[step * batch_size:(step + 1) * batch_size]
    augment_rng = torch.Generator().manual_seed(derive_seed(config.seed, "augment", iteration))
    augmentation = cifar.Augmentation.draw(batch_size, augment_rng)
    per_rank = batch_size // world.world_size
    mine = slice(world.rank * per_rank, (world.rank + 1) * per_rank)
    augmentation = augmentation.slice(mine.start, mine.stop)
    drawn = torch.stack([batch[mine], augmentation.shift_y, augmentation.shift_x, augmentation.flip.long()])
    batch, shift_y, shift_x, flip = _to_device(drawn, trial.device)
    images = data.normalize(data.train_images[batch])
    if config.data.augment:
        images = cifar.augment(images, cifar.Augmentation(shift_y, shift_x, flip.bool()))
    return images.contiguous(memory_format=trial.memory_format), data.train_labels[batch]


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




# One step.


def _step(trial: Trial, iteration: int, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One SGD step at the scheduled lr; returns [loss, correct] on the device, read back at the next host sync
    (reading it now would make the host wait for the device every iteration)."""
    lr = learning_rate(trial.config, iteration)
    for group in trial.optimizer.param_groups:
        group["lr"] = lr
    with trial.autocast:
        logits = trial.train_model(images)
        loss = F.cross_entropy(logits, labels)
    trial.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trial.optimizer.step()
    return torch.stack([loss.detach().float(), (logits.argmax(1) == labels).sum().float()])


def _inject_fault(trial: Trial, done: int) -> None:
    """`faults.fail_at_iteration`, on the first `faults.times` attempts (0: on every attempt)."""
    fault = trial.config.faults
    if done == fault.fail_at_iteration and (fault.times == 0 or trial.attempt <= fault.times):
        raise InjectedFailure(f"injected failure at iteration {done}")


def _heartbeat(trial: Trial, iteration: int, images_per_s: float) -> None:
    if trial.world.is_main:
        write_progress(trial.out_dir, ProgressRecord(
            iteration=iteration, iterations=trial.config.recipe.iterations, images_per_s=images_per_s,
            updated_at=time.time(), host=socket.gethostname(), pid=os.getpid(),
        ))


# Host sync: read the window back, stop on a non-finite loss, agree on a stop request.


def _read_back(trial: Trial, window: list[torch.Tensor], done: int, period_start: float) -> bool:
    """Adds the window's per-iteration [loss, correct], summed over ranks, to the period's sums, in order.
    False on a non-finite loss, with `progress.iteration` at the iteration that diverged."""
    progress, world = trial.progress, trial.world
    sums = all_reduce_sum(torch.stack(window), world).tolist()
    window.clear()
    first = done - len(sums) + 1
    for offset, (loss_sum, correct) in enumerate(sums):
        if not math.isfinite(loss_sum):
            progress.iteration = first + offset
            return False
        progress.period_loss += loss_sum / world.world_size
        progress.period_correct += int(correct)
    progress.period_images += len(sums) * trial.config.recipe.batch_size
    progress.iteration = done
    progress.elapsed_s = trial.elapsed_s()
    progress.period_train_s += time.perf_counter() - period_start
    return True


def _agree_to_stop(trial: Trial, stop: StopRequest) -> bool:
    """Whether any rank was asked to stop: then every rank checkpoints and ends at this same iteration."""
    requested = torch.tensor(float(stop.is_set()), device=trial.device)
    return bool(all_reduce_sum(requested, trial.world).item())


# Evaluate and checkpoint.


def _evaluate(trial: Trial, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Top-1 % on a full split, eval mode; ranks evaluate interleaved shards and sum their counts."""
    if len(labels) == 0:
        return None
    world, net = trial.world, trial.net
    if world.enabled:
        for buffer in net.buffers():  # BN running stats of rank 0, so every rank evaluates one model
            dist.broadcast(buffer, 0)
    net.eval()
    correct = torch.zeros((), device=trial.device)
    with torch.no_grad(), trial.autocast:
        for start in range(world.rank * EVAL_BATCH, len(labels), world.world_size * EVAL_BATCH):
            x = trial.data.normalize(images[start:start + EVAL_BATCH]).contiguous(memory_format=trial.memory_format)
            correct += (net(x).argmax(1) == labels[start:start + EVAL_BATCH]).sum()
    net.train()
    return 100.0 * all_reduce_sum(correct, world).item() / len(labels)


def _evaluate_and_log(trial: Trial, done: int, images_per_s: float) -> None:
    """A metrics row: the period's train loss and accuracy, validation accuracy (keeping the best weights) and
    test accuracy. Test accuracy at every evaluation lets the report compare with sources that kept the epoch
    with the best test accuracy (akamaster) as they did; it costs one pass over the test set per evaluation
    (~1.5% of the paper recipe's compute) and selects nothing; `observe.test_every_eval: false` keeps it to the
    last row. Starts the next period."""
    progress, data, recipe = trial.progress, trial.data, trial.config.recipe
    test_now = trial.config.observe.test_every_eval or done == recipe.iterations
    row = {
        "iteration": done, "lr": learning_rate(trial.config, done - 1),
        "train_loss": progress.period_loss / (progress.period_images // recipe.batch_size),
        "train_acc": 100.0 * progress.period_correct / progress.period_images,
        "val_acc": _evaluate(trial, data.val_images, data.val_labels),
        "test_acc": _evaluate(trial, data.test_images, data.test_labels) if test_now else None,
        "images_per_s": images_per_s,
        "elapsed_s": progress.elapsed_s,
    }
    if row["val_acc"] is not None and (progress.best_val_acc is None or row["val_acc"] > progress.best_val_acc):
        progress.best_val_acc, progress.best_val_iteration = row["val_acc"], done
        progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in trial.net.state_dict().items()}
    progress.rows.append(row)
    progress.period_loss, progress.period_correct, progress.period_images = 0.0, 0, 0
    progress.period_train_s = 0.0
    if trial.world.is_main:
        print(_describe(row, recipe.iterations), flush=True)
        atomic_write_lines(trial.out_dir / METRICS_FILE, progress.rows)
        trial.logger.log({k: v for k, v in row.items() if k != "iteration" and v is not None}, step=done)


def _save(trial: Trial) -> None:
    if trial.world.is_main:
        save_checkpoint(trial.out_dir, _checkpoint_state(trial.net, trial.optimizer, trial.progress))


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
            "code_versions": progress.code_versions,
        },
        "best_state": progress.best_state,
    }


# The final result.


def _final_accuracies(trial: Trial) -> dict[str, float | None]:
    """The last row's accuracies, and the test accuracy of the best-validation weights. Runs after the final
    checkpoint is written, so it may load those weights into `net`."""
    progress, test = trial.progress, (trial.data.test_images, trial.data.test_labels)
    last = progress.rows[-1] if progress.rows else {}
    test_acc = last.get("test_acc")
    if test_acc is None:  # resumed at the end, or the last row was not at the end
        test_acc = _evaluate(trial, *test)
    best_val_test_acc = None
    if progress.best_val_iteration == trial.config.recipe.iterations:
        best_val_test_acc = test_acc
    elif progress.best_state is not None:
        trial.net.load_state_dict(progress.best_state)
        best_val_test_acc = _evaluate(trial, *test)
    return {"final_val_acc": last.get("val_acc"), "final_test_acc": test_acc, "best_val_test_acc": best_val_test_acc}


def _finish(trial: Trial, outcome: Outcome, reason: str | None, **accuracies: float | None) -> TrialResult:
    """result.json and the W&B summary for how this attempt ended: every end of the loop comes through here."""
    config, runtime, progress = trial.config, trial.config.runtime, trial.progress
    progress.elapsed_s = trial.elapsed_s()
    result = TrialResult(
        status=outcome, trial_id=config.trial_id(), reason=reason, variant=config.variant, model=config.model,
        seed=config.seed, best_val_acc=progress.best_val_acc, best_val_iteration=progress.best_val_iteration,
        params=trial.params, macs=trial.macs, iterations=progress.iteration, wall_time_s=progress.elapsed_s,
        device=_device_name(trial.device), world_size=trial.world.world_size, node=trial.binding[0]["node"],
        gpu_binding=trial.binding, torch_version=torch.__version__, **_library_versions(trial.device),
        code_version=RESUMED_UNDER.join(progress.code_versions), attempt=trial.attempt, note=trial.note,
        wandb_run_dir=trial.logger.run_dir if trial.logger else None, compile=runtime.compile,
        channels_last=runtime.channels_last, precision=runtime.precision, deterministic=runtime.deterministic,
        depthwise=runtime.depthwise, split_hash=trial.data.split_hash, finished_at=time.time(),
        max_test_acc=_max_test_acc(progress.rows) if outcome is Outcome.DONE else None, **accuracies,
    )
    if trial.world.is_main:
        write_result(trial.out_dir, result)
        summary = {k: v for k, v in result.to_dict().items() if v is not None}
        trial.logger.finish(summary, exit_code=int(outcome is not Outcome.DONE))
    return result


def _max_test_acc(rows: list[dict[str, Any]]) -> float | None:
    """The best test accuracy over the evaluations (selected on the test set: optimistic, for comparison with
    sources that report it); None when an earlier attempt's rows did not record it."""
    tests = [row.get("test_acc") for row in rows]
    return max(tests) if tests and None not in tests else None


def _describe(row: dict[str, Any], iterations: int) -> str:
    names = (("train", "train_acc"), ("val", "val_acc"), ("test", "test_acc"))
    accuracies = " ".join(f"{name} {row[key]:.2f}%" for name, key in names if row.get(key) is not None)
    return (f"iteration {row['iteration']}/{iterations} lr {row['lr']:g} loss {row['train_loss']:.4f} "
            f"{accuracies} {row['images_per_s']:.0f} img/s")


def _reason(error: BaseException) -> str:
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}" if not isinstance(error, InjectedFailure) else message


def _check_inputs(config: TrialConfig, out_dir: Path, world: Distributed, device: torch.device) -> None:
    """What makes a trial impossible, found before it starts (checked identically on every rank)."""
    if config.recipe.batch_size % world.world_size:
        raise TrialInputError(f"recipe.batch_size {config.recipe.batch_size} is not divisible by "
                              f"the world size {world.world_size}")
    if config.runtime.compile == "cudagraphs" and device.type != "cuda":
        raise TrialInputError("runtime.compile=cudagraphs needs a CUDA device")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}-{world.rank}-{uuid.uuid4().hex[:8]}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))  # never a planted link
        probe.unlink()
    except OSError as error:
        reason = error.strerror or error
        raise TrialInputError(f"output directory {out_dir} is not writable: {reason}") from None
    existing = out_dir / CONFIG_FILE
    if existing.exists():
        try:
            trial_id = (read_json(existing, MAX_RECORD_BYTES) or {}).get("trial_id")
        except (ValueError, AttributeError):  # not JSON, refused, or not a mapping
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
    path = out_dir / ATTEMPTS_FILE
    try:
        previous = (read_json(path, MAX_RECORD_BYTES) or {}).get("attempt", 0)
    except (ValueError, AttributeError):  # not JSON, refused, or not a mapping: counted afresh, written below
        previous = 0
    attempt = (previous if type(previous) is int else 0) + 1
    atomic_write_json(path, {"attempt": attempt})
    return attempt


def _library_versions(device: torch.device) -> dict[str, str | None]:
    """CUDA and cuDNN as torch was built with them, and the GPU's model: what the report's provenance shows."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"cuda_version": torch.version.cuda, "cudnn_version": None if cudnn is None else str(cudnn),
            "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
