"""Where a number came from: the CPU, its vector instructions, the library versions, the BLAS and the thread count a
trial (or an analysis) ran with.

The same seed on the same machine gives bit-identical trials; another CPU takes other SIMD kernels (AVX2, AVX-512)
and another BLAS code path, another thread count sums in another order, and a few optimiser steps carry that
rounding into different prompts and scores. So every result records its environment (`describe`), results from
one environment share a `fingerprint`, and the report says which environments its numbers came from.

Nothing here imports a numerical library: `describe` reports on what the process has already loaded (torch,
numpy, the BLAS libraries through threadpoolctl), and package versions come from the installed metadata. A leaf
module: it imports nothing of the project.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import sys
from importlib import metadata
from typing import Any

# Installed versions worth knowing (those that change numbers first).
PACKAGES = ("torch", "transformers", "numpy", "scipy", "safetensors", "tokenizers", "datasets", "ray",
            "sentence-transformers", "scikit-learn", "itsel-ray")
# CPU flags that pick a kernel: the vector extensions of x86 (and their AMX / VNNI relatives) and of Arm.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")
# Environment variables that change which kernel runs or how many threads sum.
NUMERIC_ENV = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "DNNL_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
               "NPY_DISABLE_CPU_FEATURES", "CUBLAS_WORKSPACE_CONFIG")
# The parts of `describe` that change numbers, hashed into the fingerprint.
FINGERPRINT_KEYS = ("cpu", "torch", "blas", "numpy", "versions", "env")


@functools.lru_cache(maxsize=1)
def cpu() -> dict[str, Any]:
    """{"model", "isa": [flags of ISA_FLAGS the CPU has], "cores": logical CPUs}. Linux reads /proc/cpuinfo;
    elsewhere the model is platform.processor() and the flags are unknown (empty)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and value.strip():
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags |= set(value.split())
    except OSError:
        pass
    return {"model": model, "isa": [f for f in ISA_FLAGS if f in flags], "cores": os.cpu_count()}


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Installed version of each of PACKAGES that is installed."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _torch() -> dict[str, Any] | None:
    """The loaded torch's kernel choice, threads and BLAS, or None when the process has not imported torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    out: dict[str, Any] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    try:
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # an old or unusual build
        out["cpu_capability"] = None
    config = torch.__config__.show()
    for key in ("BLAS_INFO", "LAPACK_INFO"):
        found = re.search(rf"\b{key}=([\w.-]+)", config)
        if found:
            out[key.lower()] = found.group(1)
    out["mkl"] = bool(torch.backends.mkl.is_available())
    out["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    if torch.cuda.is_available():
        out["cuda"] = {"device": torch.cuda.get_device_name(), "version": torch.version.cuda,
                       "cudnn": torch.backends.cudnn.version()}
    return out


def _numpy() -> dict[str, Any] | None:
    np = sys.modules.get("numpy")
    if np is None:
        return None
    out: dict[str, Any] = {"version": np.__version__}
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features  # numpy >= 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            features = {}
    out["simd"] = sorted(k for k, v in features.items() if v and k.startswith(("AVX", "FMA", "ASIMD", "SVE")))
    return out


def _blas() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries loaded in this process (threadpoolctl): API, version, the kernel family
    chosen for this CPU (OpenBLAS's "architecture") and threads."""
    if "numpy" not in sys.modules and "torch" not in sys.modules:
        return []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return sorted(({k: lib.get(k) for k in keys if lib.get(k) is not None} for lib in threadpool_info()),
                  key=lambda d: json.dumps(d, sort_keys=True))


def describe() -> dict[str, Any]:
    """This process's numerical environment as a JSON-able dict: host, platform, python, cpu, versions, env
    (the NUMERIC_ENV variables that are set), torch and numpy (when loaded), blas, and its fingerprint."""
    out = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu(),
        "versions": versions(),
        "env": {k: os.environ[k] for k in NUMERIC_ENV if k in os.environ},
        "torch": _torch(),
        "numpy": _numpy(),
        "blas": _blas(),
    }
    out["fingerprint"] = fingerprint(out)
    return out


def fingerprint(desc: dict[str, Any]) -> str:
    """12 hex digits that two environments share when nothing in them changes numbers (the host name and the
    platform string are left out: two identical machines share a fingerprint)."""
    keep = {k: desc.get(k) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:12]


def summary(desc: dict[str, Any]) -> str:
    """One line: "AMD EPYC (avx2, fma) x2 | torch 2.13.0 AVX2, 1 thread, mkl | numpy 2.4.6 openblas Haswell |
    transformers 5.25.0"."""
    c = desc.get("cpu") or {}
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma", "avx", "asimd", "sve") if f in
           c.get("isa", [])][:3]
    parts = [f"{c.get('model', '?')} ({', '.join(isa) or 'no AVX'}) x{c.get('cores', '?')}"]
    t = desc.get("torch")
    if t:
        threads = t.get("threads")
        cuda = f", {t['cuda']['device']}" if t.get("cuda") else ""
        parts.append(f"torch {t.get('version')} {t.get('cpu_capability')}, {threads} thread{'s' * (threads != 1)}, "
                     f"{t.get('blas_info') or '?'}{cuda}")
    np_ = desc.get("numpy")
    blas = next((b for b in desc.get("blas", []) if b.get("internal_api") in ("openblas", "mkl", "blis")), None)
    if np_:
        parts.append(f"numpy {np_.get('version')}"
                     + (f" {blas['internal_api']} {blas.get('architecture') or blas.get('version') or ''}".rstrip()
                        if blas else ""))
    v = desc.get("versions") or {}
    if "transformers" in v:
        parts.append(f"transformers {v['transformers']}")
    if desc.get("env"):
        parts.append(" ".join(f"{k}={val}" for k, val in sorted(desc["env"].items())))
    return " | ".join(parts)
