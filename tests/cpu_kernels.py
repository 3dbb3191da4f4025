"""CPU kernel sets: which vectorised kernels a CPU trial runs, pinned through the environment of a fresh process.

At start-up torch picks its ATen kernels for the best ISA the CPU has (`torch.backends.cpu.get_cpu_capability()`:
DEFAULT, AVX2, AVX512), and so do oneDNN (convolutions) and MKL (GEMMs). Kernels for different ISAs sum in
different orders, so exact floats belong to the kernel set that computed them, not to the code alone: recorded on
an AVX2-only CPU, ResNet-8's fixed-seed run ended at 27.0% test accuracy there and at 31.5% on an AVX-512 one
(issue 29). A test that compares against recorded floats therefore runs its trial on the kernel set they were
recorded with: a new process (each library reads its variable once, when it loads) whose environment caps all
three, unless the test's own process runs that set already. Where the CPU cannot run it, the test skips, saying
why.

torch trusts ATEN_CPU_CAPABILITY without checking the CPU (`avx512` on an AVX2-only CPU reports AVX512, then dies
of SIGILL at the first AVX-512 kernel), so whether this machine can run a set is decided from what torch picks
with nothing pinned. oneDNN and MKL only lower their pick to the cap.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

# x86 capabilities, weakest first: a CPU runs the kernels of its own capability and of every one before it.
X86_CAPABILITIES = ("DEFAULT", "AVX2", "AVX512")
# Every variable that moves a pick; a pinned environment sets its own and drops the rest.
PIN_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                 "MKL_CBWR", "MKL_DEBUG_CPU_TYPE")


@dataclass(frozen=True)
class KernelSet:
    name: str
    capability: str  # what torch.backends.cpu.get_cpu_capability() reports under the pin
    onednn_isa: str  # what oneDNN's verbose `isa:` line reports under the pin
    env: tuple[tuple[str, str], ...]


KERNEL_SETS = {
    # Where test_trial_bitwise's constants were recorded (AMD EPYC, AVX2 only); verified to reproduce them.
    "avx2": KernelSet("avx2", "AVX2", "Intel AVX2", (
        ("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2"))),
    # The non-vectorised kernels: a kernel set any x86 CPU runs, other than AVX2's (about 4x slower).
    "default": KernelSet("default", "DEFAULT", "Intel SSE4.1", (
        ("ATEN_CPU_CAPABILITY", "default"), ("ONEDNN_MAX_CPU_ISA", "SSE41"), ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"))),
}

# Prints what a process runs on: torch's capability, then oneDNN's ISA (its verbose line, at its first primitive;
# a batch of one would take ATen's own convolution).
_PROBE = """
import json, torch
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
torch.nn.functional.conv2d(torch.ones(8, 16, 16, 16), torch.ones(16, 16, 3, 3))  # a trial's conv: oneDNN's
"""


def unpinned_env(base: dict[str, str] | None = None) -> dict[str, str]:
    base = dict(os.environ) if base is None else base
    return {k: v for k, v in base.items() if k not in PIN_VARIABLES}


def pinned_env(name: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (this process's environment by default) running the kernel set `name` instead of its own."""
    return unpinned_env(base) | dict(KERNEL_SETS[name].env)


def probe(env: dict[str, str]) -> dict[str, Any]:
    """What a fresh interpreter with `env` runs on: `capability` (torch) and `onednn_isa` (oneDNN)."""
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env | {"ONEDNN_VERBOSE": "1", "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    (reported,) = (json.loads(line) for line in lines if line.startswith("{"))
    isa = [line.rsplit(",isa:", 1)[1] for line in lines if line.startswith("onednn_verbose") and ",isa:" in line]
    return reported | {"onednn_isa": isa[0] if isa else None}


@functools.cache
def native() -> dict[str, Any]:
    """What this CPU runs with nothing pinned (probed once per session: this process may have been started
    pinned, and oneDNN's pick is not visible from Python)."""
    return probe(unpinned_env())


def cannot_run(name: str, native_capability: str | None = None) -> str | None:
    """Why this CPU (torch's unpinned pick: `native_capability`) cannot run the kernel set `name`; None if it can."""
    native_capability = native_capability or native()["capability"]
    needed = KERNEL_SETS[name].capability
    if native_capability not in X86_CAPABILITIES or (
            X86_CAPABILITIES.index(needed) > X86_CAPABILITIES.index(native_capability)):
        return f"the {name} kernel set needs an x86 CPU with {needed}; torch here picks {native_capability}"
    return None


def require(name: str) -> None:
    """Skip the calling test, saying why, where this CPU cannot run the kernel set `name`."""
    reason = cannot_run(name)
    if reason:
        pytest.skip(f"{reason}: the numbers compared here were recorded on {name} kernels")


def is_own(name: str, unpinned: dict[str, Any] | None = None) -> bool:
    """Whether this CPU's own kernels (`unpinned`, a `probe`; this CPU's by default) are the kernel set `name`."""
    unpinned = unpinned or native()
    kernels = KERNEL_SETS[name]
    return (unpinned["capability"], unpinned["onednn_isa"]) == (kernels.capability, kernels.onednn_isa)


def runs_here(name: str) -> bool:
    """Whether this process, as started, runs the kernel set `name`: then a trial needs no pinned process."""
    return not set(PIN_VARIABLES) & set(os.environ) and is_own(name)


def rerun_reason(name: str, unpinned: dict[str, Any] | None = None) -> str | None:
    """Why the extra run of a test on kernel set `name`, beside its run on this CPU's own kernels, is skipped: the
    CPU cannot run the set, or its own kernels (`unpinned`, a `probe`) are that set already. None: worth running."""
    unpinned = unpinned or native()
    if reason := cannot_run(name, unpinned["capability"]):
        return reason
    if is_own(name, unpinned):
        return (f"this CPU's own kernels are the {name} set (torch {unpinned['capability']}, oneDNN "
                f"{unpinned['onednn_isa']}): the unpinned run used them")
    return None
