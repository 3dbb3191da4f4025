"""Bad input to `train` is one line on stderr and exit code 2, before anything runs."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from test_trial_helpers import SMOKE, train, train_process, trial_env

from ghostsweep.trials.cli import OVERRIDES, config_from_args


def write_fake_cifar(folder: Path, images: int = 10_000, shape: tuple[int, ...] = (10_000, 3072)) -> Path:
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": np.zeros(shape, dtype=np.uint8), "labels": [0] * images}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def one_line_error(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    assert train(*args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ghostsweep train: error: "), err
    return err


@pytest.mark.parametrize(("flags", "message"), [
    (["--model", "resnet7"], "depth 7"),
    (["--model", "alexnet8"], "unknown model 'alexnet8'"),
    (["--model", "ghost_resnet20", "--ratio", "1"], "ghost ratio must be >= 2"),
    (["--iterations", "0"], "recipe.iterations: must be > 0"),
    (["--iterations", "-5"], "recipe.iterations: must be > 0"),
    (["--milestones", "200", "100"], "recipe.milestones: must be positive and strictly increasing"),
    (["--milestones", "100", "100"], "recipe.milestones: must be positive and strictly increasing"),
    (["--batch-size", "0"], "recipe.batch_size: must be > 0"),
    (["--val-size", "50000"], "data.val_size"),
])
def test_invalid_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    args = ["--model", "resnet8", "--seed", "0", "--out", tmp_path / "trial", "--data-dir", tmp_path, *flags]
    assert message in one_line_error(capsys, *args)
    assert not (tmp_path / "trial").exists()


@pytest.mark.parametrize(("flags", "message"), [
    ([], "give --model and --seed (or a --config that sets them)"),
    (["--model", "resnet8"], "give --seed (or a --config that sets it)"),
    (["--seed", "3"], "give --model (or a --config that sets it)"),
])
def test_a_trials_identity_is_never_a_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    """--model and --seed name the trial: without them (or a --config that sets them) train refuses to guess."""
    assert message in one_line_error(capsys, *flags, "--out", tmp_path / "trial", "--data-dir", tmp_path)
    assert not (tmp_path / "trial").exists()


def test_config_file_supplies_the_identity(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("model: resnet8\nseed: 4\n")
    args = argparse.Namespace(**dict.fromkeys(OVERRIDES), config=tmp_path / "c.yaml")
    assert config_from_args(args).seed == 4


def test_missing_data_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    err = one_line_error(capsys, *SMOKE, "--out", tmp_path / "trial", "--data-dir", missing)
    assert f"CIFAR-10 not found at {missing}" in err


@pytest.mark.parametrize(("damage", "message"), [
    ("delete test_batch", "incomplete: missing test_batch"),
    ("garbage data_batch_3", "data_batch_3 is unreadable"),
    ("wrong shape", "expected uint8 (10000, 3072)"),
    ("too few labels", "has 9999 labels"),
])
def test_corrupt_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: str, message: str
) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    if damage == "wrong shape":
        write_fake_cifar(folder, shape=(10_000, 1024))
    elif damage == "too few labels":
        write_fake_cifar(folder, images=9_999)
    else:
        write_fake_cifar(folder)
    if damage == "delete test_batch":
        (folder / "test_batch").unlink()
    if damage == "garbage data_batch_3":
        (folder / "data_batch_3").write_bytes(b"not a pickle")
    err = one_line_error(capsys, *SMOKE, "--out", tmp_path / "trial", "--data-dir", tmp_path)
    assert str(folder) in err and message in err


def test_batch_not_divisible_by_world_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    err = one_line_error(capsys, "--model", "resnet8", "--seed", "0", "--batch-size", "128", "--out", tmp_path / "t",
                         "--data-dir", tmp_path)
    assert "recipe.batch_size 128 is not divisible by the world size 3" in err


def test_out_dir_not_writable(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be made under a file, even by root
    err = one_line_error(capsys, *SMOKE, "--out", blocker / "trial", "--data-dir", tmp_path)
    assert f"output directory {blocker / 'trial'} is not writable" in err


def test_the_write_probe_never_follows_a_planted_link(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Found by att25: the probe's name was `.write-probe-PID-RANK`, written with a plain write, so a link planted
    under it (PIDs are guessable) emptied the file it pointed to."""
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "trial"
    out.mkdir()
    (out / f".write-probe-{os.getpid()}-0").symlink_to(victim)
    (out / "config.json").write_text('{"trial_id": "resnet56-s3-00000000"}')  # stops it right after the probe
    assert "holds trial 'resnet56-s3-00000000'" in one_line_error(capsys, *SMOKE, "--out", out, "--data-dir", tmp_path)
    assert victim.read_text() == "mine"


def test_out_dir_of_another_trial(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"trial_id": "resnet56-s3-00000000"}')
    err = one_line_error(capsys, *SMOKE, "--out", tmp_path, "--data-dir", tmp_path)
    assert "holds trial 'resnet56-s3-00000000'" in err


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path: Path) -> None:
    completed = train_process("--model", "resnet8", "--seed", "0", "--iterations", "0", "--out", tmp_path,
                              env=trial_env())
    assert completed.returncode == 2
    assert completed.stderr.strip() == "ghostsweep train: error: recipe.iterations: must be > 0, got 0"
