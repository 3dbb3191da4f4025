"""The kernel pins that tests comparing against recorded floats rely on (`cpu_kernels`): a pinned process runs the
pinned kernels, a CPU is never asked to run kernels it lacks, and the extra pinned runs happen where they differ."""

from __future__ import annotations

import os

import pytest
import torch
from cpu_kernels import (
    KERNEL_SETS,
    PIN_VARIABLES,
    cannot_run,
    native,
    pinned_env,
    probe,
    rerun_reason,
    runs_here,
    unpinned_env,
)
from test_trial_bitwise import RECORDINGS


@pytest.mark.parametrize("name", KERNEL_SETS)
def test_a_pinned_process_runs_the_pinned_kernels(name: str) -> None:
    """What torch and oneDNN report in a fresh process under the pin, even one started under another pin."""
    reason = cannot_run(name)
    if reason:
        pytest.skip(reason)
    kernels = KERNEL_SETS[name]
    foreign = {"ATEN_CPU_CAPABILITY": "avx512", "DNNL_MAX_CPU_ISA": "ALL", "MKL_CBWR": "AUTO"}
    assert probe(pinned_env(name, unpinned_env() | foreign)) == {
        "capability": kernels.capability, "onednn_isa": kernels.onednn_isa}


def test_the_unpinned_probe_is_the_cpus_own_pick() -> None:
    """`native()` probes a process with every pin variable dropped: the CPU's own pick, whatever this process was
    started with (the same as this process's when it was started unpinned)."""
    assert not set(PIN_VARIABLES) & set(unpinned_env(pinned_env("avx2") | {"DNNL_MAX_CPU_ISA": "ALL"}))
    if not set(PIN_VARIABLES) & set(os.environ):
        assert native()["capability"] == torch.backends.cpu.get_cpu_capability()


def test_a_test_process_started_pinned_trains_in_a_pinned_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process training is for a process that runs the set unpinned; one started under any pin spawns."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert not runs_here("avx2") and not runs_here("default")


def test_which_kernel_sets_a_cpu_runs() -> None:
    """Simulated CPUs (torch's unpinned pick): AVX2 kernels run on AVX2 and AVX-512 CPUs, never beyond (torch would
    take the pin and die of SIGILL); the default kernels on any x86 CPU."""
    assert cannot_run("avx2", "AVX512") is None and cannot_run("avx2", "AVX2") is None
    assert cannot_run("avx2", "DEFAULT") == "the avx2 kernel set needs an x86 CPU with AVX2; torch here picks DEFAULT"
    assert cannot_run("avx2", "SVE256") is not None and cannot_run("default", "SVE256") is not None
    assert cannot_run("default", "DEFAULT") is None and cannot_run("default", "AVX512") is None


def test_the_extra_avx2_run_happens_where_the_own_kernels_differ() -> None:
    """The learning tests' second, AVX2-pinned run: on an AVX-512 CPU it runs; on an AVX2 one it would repeat the
    unpinned run and is skipped, as it is where AVX2 cannot run."""
    avx512 = {"capability": "AVX512", "onednn_isa": "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"}
    assert rerun_reason("avx2", avx512) is None
    assert rerun_reason("avx2", {"capability": "AVX2", "onednn_isa": "Intel AVX-512 ..."}) is None  # oneDNN differs
    assert rerun_reason("avx2", {"capability": "AVX2", "onednn_isa": "Intel AVX2"}) == (
        "this CPU's own kernels are the avx2 set (torch AVX2, oneDNN Intel AVX2): the unpinned run used them")
    assert rerun_reason("avx2", {"capability": "DEFAULT", "onednn_isa": "Intel SSE4.1"}).startswith(
        "the avx2 kernel set needs")


def test_every_recording_names_a_kernel_set() -> None:
    """A recording of exact floats is always checked on the kernels that made it."""
    assert RECORDINGS and set(RECORDINGS) <= set(KERNEL_SETS)
