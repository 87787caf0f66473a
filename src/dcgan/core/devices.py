"""Device choice: a device name to a torch.device, refusing one that is not there."""

from __future__ import annotations

import torch

from dcgan.core.errors import SettingError


def pick_device(name: str) -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device must exist."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SettingError("device", "is 'cuda' but no CUDA device is available (use auto or cpu)")
    if name == "mps" and not has_mps:
        raise SettingError("device", "is 'mps' but MPS is not available (use auto or cpu)")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# train.precision: auto

FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 flags (/proc/cpuinfo) of CPUs with bf16 dot-product units, which oneDNN uses for bf16
convolutions. Without them (AVX2, or AVX-512 without BF16) bf16 convolutions are emulated and
run many times slower than fp32 (about 20x on an AVX2-only EPYC, benchmarks/train_speed.py)."""


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``), or None where unreadable."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def bf16_speedup_probe(size: int = 16, channels: int = 32, batch: int = 32, reps: int = 3) -> float:
    """fp32 time / bf16-autocast time of a DCGAN-sized convolution's forward and backward on
    the CPU (best of ``reps`` after one warm-up each); > 1 means bf16 is faster. ~0.1-2 s."""
    import time

    conv = torch.nn.Conv2d(channels, 2 * channels, 4, 2, 1)
    x = torch.randn(batch, channels, size, size, requires_grad=True)

    def best(dtype: torch.dtype | None) -> float:
        times = []
        for _ in range(reps + 1):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                y = conv(x)
            y.float().sum().backward()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(None) / best(torch.bfloat16)


def resolve_precision(requested: str, device: torch.device, *, capability: str | None = None,
                      flags: set[str] | None | bool = True, cuda_capability: tuple[int, int] | None = None,
                      probe=None) -> tuple[str, str]:
    """``train.precision`` to the number format a run uses, and why (for the log).

    ``auto`` is bf16 autocast where the hardware runs bf16 faster than fp32, else fp32:
    - CUDA: bf16 on compute capability 8.0 or newer (Ampere, Hopper, ...; native bf16 tensor
      cores), fp32 on older GPUs;
    - CPU: bf16 when PyTorch's CPU capability is AVX512 (or newer) and the CPU has AVX-512 BF16
      or AMX-BF16 units (``FAST_BF16_CPU_FLAGS``); fp32 on x86 without them; where the flags do
      not settle it (unreadable, or a non-x86 CPU that reports ``bf16``), a timing probe of one
      convolution decides (bf16 only if at least 1.2x faster);
    - anything else (MPS): fp32.
    The keyword arguments replace what is read from the machine (tests fake the hardware):
    ``capability`` = torch.backends.cpu.get_cpu_capability(), ``flags`` = :func:`cpu_flags`
    (None: unreadable), ``cuda_capability`` = torch.cuda.get_device_capability(device),
    ``probe`` = :func:`bf16_speedup_probe`. An explicit precision is returned as it is.
    """
    if requested != "auto":
        return requested, "as set"
    if device.type == "cuda":
        cc = cuda_capability or torch.cuda.get_device_capability(device)
        if tuple(cc) >= (8, 0):
            return "bf16", f"auto: CUDA device with compute capability {cc[0]}.{cc[1]} has native bf16"
        return "fp32", f"auto: CUDA compute capability {cc[0]}.{cc[1]} is below 8.0 (no native bf16)"
    if device.type != "cpu":
        return "fp32", f"auto: fp32 on {device.type}"
    cap = capability if capability is not None else torch.backends.cpu.get_cpu_capability()
    fl = cpu_flags() if flags is True else flags
    units = sorted(set(FAST_BF16_CPU_FLAGS) & fl) if fl else []
    x86 = fl is not None and bool({"sse2", "avx", "avx2"} & fl)
    if fl is not None and x86:
        if units and cap.startswith(("AVX512", "AMX")):
            return "bf16", f"auto: CPU has {'/'.join(units)} and PyTorch CPU capability {cap}"
        why = ("no AVX-512 BF16 or AMX units" if not units
               else f"PyTorch's CPU capability is {cap}, not AVX512")
        return "fp32", f"auto: CPU capability {cap}, {why}: bf16 would run slower than fp32"
    if fl is not None and "bf16" not in fl:
        return "fp32", f"auto: CPU capability {cap}, no bf16 in the CPU features"
    ratio = (probe or bf16_speedup_probe)()
    if ratio >= 1.2:
        return "bf16", f"auto: a bf16 convolution ran {ratio:.2f}x faster than fp32 on this CPU ({cap})"
    return "fp32", f"auto: a bf16 convolution ran at {ratio:.2f}x fp32's speed on this CPU ({cap})"
