"""Throughput, peak memory and FLOP efficiency of perceptual_sim models, against lpips.

    python benchmarks/speed.py [--models NAME_OR_CARD ...] [--sizes 64 256 512] [--batches 1 32]
                               [--repeats 5] [--device cpu|cuda] [--json OUT] [--quick]

One process, one run, everything under ``torch.inference_mode``:

* **Throughput:** one warm-up call, then up to ``--repeats`` timed calls (fewer when a cell
  exceeds ``--budget`` seconds); the median gives pairs/s. Models run with their defaults
  (``validate=True``, precision float32); lpips gets inputs already in [-1, 1].
* **FLOPs** per pair from ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 call
  (convolutions and matmuls); achieved GFLOP/s is set against peaks measured in the same
  run (float32 matmul and 3x3 convolution, best of a few calls).
* **Peak memory** is working memory above the level before the call (weights and inputs
  excluded), from one more, untimed, series of calls. On CUDA:
  ``torch.cuda.max_memory_allocated``. On CPU it is *sampled*: a thread reads glibc's
  ``mallinfo2`` (``uordblks + hblkhd``, bytes in use) about every 0.5 ms, so a peak
  shorter than that can be missed; "n/a" without glibc >= 2.33.
* **bfloat16:** our models again with ``precision="bfloat16"`` (autocast), and the largest
  relative change of their N x N distances (all three modes) from float32 on natural-ish
  images (``--images DIR``, else synthetic images with a 1/f spectrum, then distorted).
* **N x M:** ``embed`` + ``pairwise`` for N = M images at the smallest size, against a
  Python loop calling the model pair by pair, timed on a subset and extrapolated.

Cells whose estimated work exceeds ``--max-gflop`` per call are skipped (and listed);
the default caps CPU runs at 1000 GFLOP per call (LPIPS-VGG at batch 32 and 256 px or
more), none on CUDA.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from perceptual_sim import __version__
from perceptual_sim.convert import REFERENCES
from perceptual_sim.distances import MODES
from perceptual_sim.images import IMAGE_SUFFIXES, load_image
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import ModelCard
from perceptual_sim.models.registry import list_models

MIB = 1 << 20
CPU_MAX_GFLOP = 1000.0
"""Default ``--max-gflop`` on CPU: larger cells take minutes per call there."""


# ----------------------------------------------------------------------------- images
def natural_images(n: int, size: int, seed: int) -> Tensor:
    """``n`` x 3 x size x size images in [0, 1] with a 1/f amplitude spectrum, as natural images have."""
    g = torch.Generator().manual_seed(seed)
    freq = torch.sqrt(torch.fft.fftfreq(size)[:, None] ** 2 + torch.fft.rfftfreq(size)[None] ** 2)
    spectrum = torch.randn(n, 4, size, size // 2 + 1, generator=g, dtype=torch.complex64)
    fields = torch.fft.irfft2(spectrum / freq.clamp_min(1 / size), s=(size, size))
    rgb = 0.7 * fields[:, :1] + 0.3 * fields[:, 1:]  # shared luminance: correlated channels
    rgb = (rgb - rgb.mean((1, 2, 3), keepdim=True)) / rgb.std((1, 2, 3), keepdim=True)
    return (0.5 + 0.18 * rgb).clamp(0, 1)


def folder_images(folder: Path, n: int, size: int) -> Tensor:
    """``n`` images of ``folder`` (cycled when fewer), resized to size x size (bilinear, antialiased)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:n]
    if not files:
        raise SystemExit(f"error: --images {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = [F.interpolate(load_image(p)[None], size=(size, size), mode="bilinear", antialias=True)[0]
              for p in files]
    return torch.stack([images[i % len(images)] for i in range(n)]).clamp(0, 1)


def distort(x: Tensor, seed: int) -> Tensor:
    """A mild distortion per image, by index modulo 4: noise, blur, brightness, stronger noise."""
    kind = torch.arange(x.shape[0]) % 4
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    out = x.clone()
    out[kind == 0] += 0.03 * noise[kind == 0]
    out[kind == 1] = F.avg_pool2d(x[kind == 1], 3, stride=1, padding=1, count_include_pad=False)
    out[kind == 2] *= 1.1
    out[kind == 3] += 0.1 * noise[kind == 3]
    return out.clamp(0, 1)


# ----------------------------------------------------------------------------- measuring
class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _heap_reader() -> Callable[[], int] | None:
    """A function returning glibc's bytes in use (``uordblks + hblkhd``), or None without mallinfo2."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def read() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return read


HEAP_BYTES = _heap_reader()


def peak_memory(fn: Callable[[], Any], device: torch.device, seconds: float = 0.3) -> int | None:
    """Largest working memory (bytes above the level before) of ``fn``, called for about ``seconds``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    if HEAP_BYTES is None:
        return None
    read = HEAP_BYTES
    base = read()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, read())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    for _ in range(20):
        fn()
        if time.perf_counter() - start > seconds:
            break
    done.set()
    sampler.join()
    return max(peak, read()) - base


def time_calls(fn: Callable[[], Any], sync: Callable[[], None], *, repeats: int, budget: float) -> list[float]:
    """Seconds of up to ``repeats`` calls after one warm-up call; stops early past ``budget`` seconds."""
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return times


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as FlopCounterMode counts them.

    Attention runs on the math backend here: FlopCounterMode does not count the fused CPU
    kernel of ``scaled_dot_product_attention`` (it would report 0 FLOPs for it), but it counts
    the matmuls of the math path.
    """
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def syncer(device: torch.device) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def measure_peaks(device: torch.device, repeats: int) -> dict[str, float]:
    """Best GFLOP/s of a square matmul and of a 3x3 convolution, in float32 and bfloat16."""
    sync = syncer(device)
    n = 8192 if device.type == "cuda" else 2048
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device) for _ in range(2))
    x = torch.randn(16, 64, 64, 64, generator=g).to(device, memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, generator=g).to(device, memory_format=torch.channels_last)
    conv_flops = 2 * 16 * 64 * 64 * 64 * 64 * 9
    cases = {
        f"matmul {n}x{n} float32": (lambda: a @ b, 2 * n**3),
        "conv 3x3 64->64 16x64x64 float32": (lambda: F.conv2d(x, w, padding=1), conv_flops),
    }
    ab, bb, xb, wb = (t.bfloat16() for t in (a, b, x, w))
    cases[f"matmul {n}x{n} bfloat16"] = (lambda: ab @ bb, 2 * n**3)
    cases["conv 3x3 64->64 16x64x64 bfloat16"] = (lambda: F.conv2d(xb, wb, padding=1), conv_flops)
    return {name: flops / min(time_calls(fn, sync, repeats=repeats, budget=10.0)) / 1e9
            for name, (fn, flops) in cases.items()}


# ----------------------------------------------------------------------------- subjects
@dataclass
class Subject:
    """A metric under test: its name, precision, and ``forward(x, y)`` on images from ``prepare``."""

    name: str
    precision: str
    forward: Callable[[Tensor, Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor]


def ours(name: str, module: PerceptualDistance) -> Subject:
    """One of our models as a subject: images in [0, 1], the module's own precision."""
    precision = "float32" if module.precision == "auto" else module.precision
    return Subject(name, precision, module, lambda x: x)


def bfloat16_twin(module: PerceptualDistance) -> PerceptualDistance:
    """The same model and weights with ``precision="bfloat16"``."""
    twin = PerceptualDistance.from_card(module.card, module.state_dict(), mode=module.mode, precision="bfloat16")
    return twin.to(module.device)


def our_models(specs: Sequence[str], random_widths: Sequence[float],
               device: torch.device) -> list[tuple[str, PerceptualDistance]]:
    """Our models from names / card paths, plus random-initialised ResNet-6 at ``random_widths``."""
    models = [(Path(spec).stem if spec.endswith(".json") else spec, PerceptualDistance.from_pretrained(spec).to(device))
              for spec in specs]
    for width in random_widths:
        torch.manual_seed(0)
        name = f"resnet6-w{width:g}-random"
        card = ModelCard(name=name, arch="k22_resnet", arch_args={"width": width}, summary="random weights")
        models.append((name, PerceptualDistance(card).to(device)))
    return models


def lpips_models(nets: Sequence[str], device: torch.device) -> list[Subject]:
    """``lpips.LPIPS(net=...)`` with random trunks (their weights do not change the speed); inputs in [-1, 1]."""
    if not nets:
        return []
    import lpips

    subjects = []
    for net in nets:
        with warnings.catch_warnings():  # torchvision's deprecation notes on lpips' calls
            warnings.simplefilter("ignore", UserWarning)
            module = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).to(device).eval()
        subjects.append(Subject(f"lpips-{net}", "float32", lambda x, y, m=module: m(x, y), lambda x: 2 * x - 1))
    return subjects


# ----------------------------------------------------------------------------- benchmarks
def throughput(subject: Subject, sizes: Sequence[int], batches: Sequence[int], args: argparse.Namespace,
               device: torch.device, peak: float, images: Callable[[int, int, int], Tensor]) -> list[dict[str, Any]]:
    """One row per size and batch: pairs/s, ms per call, GFLOP per pair, GFLOP/s, % of peak, memory."""
    sync = syncer(device)
    rows = []
    for size in sizes:
        x_all = subject.prepare(images(max(batches), size, 0)).to(device)
        y_all = subject.prepare(distort(images(max(batches), size, 0), 1)).to(device)
        flops = count_flops(partial(subject.forward, x_all[:1], y_all[:1]))
        for batch in batches:
            row: dict[str, Any] = {"model": subject.name, "precision": subject.precision, "size": size,
                                   "batch": batch, "gflop_per_pair": flops / 1e9}
            if flops * batch / 1e9 > args.max_gflop:
                row["skipped"] = f"{flops * batch / 1e9:.0f} GFLOP per call > --max-gflop {args.max_gflop:g}"
                rows.append(row)
                print(f"  {subject.name} {subject.precision} {size}px batch {batch}: skipped ({row['skipped']})",
                      file=sys.stderr)
                continue
            call = partial(subject.forward, x_all[:batch], y_all[:batch])
            times = time_calls(call, sync, repeats=args.repeats, budget=args.budget)
            seconds = statistics.median(times)
            memory = peak_memory(call, device)
            row.update(calls=len(times), ms_per_call=1e3 * seconds, pairs_per_s=batch / seconds,
                       gflops=flops * batch / seconds / 1e9, peak_fraction=flops * batch / seconds / 1e9 / peak,
                       peak_memory_mib=None if memory is None else memory / MIB)
            rows.append(row)
            print(f"  {subject.name} {subject.precision} {size}px batch {batch}: {row['pairs_per_s']:.4g} pairs/s",
                  file=sys.stderr)
    return rows


def relative_change(new: Tensor, old: Tensor) -> dict[str, float]:
    """Elementwise ``max |new/old - 1|`` and its median, and norm-wise ``max |new - old| / max |old|``."""
    diff = (new - old).abs()
    elementwise = diff / old.abs().clamp_min(1e-12)
    return {"max_rel": float(elementwise.max()), "median_rel": float(elementwise.median()),
            "normwise": float(diff.max() / old.abs().max().clamp_min(1e-12))}


def bfloat16_change(fp32: PerceptualDistance, bf16: PerceptualDistance, sizes: Sequence[int], n: int,
                    device: torch.device, images: Callable[[int, int, int], Tensor]) -> dict[str, dict[str, float]]:
    """:func:`relative_change` of the n x n distances from float32 to bfloat16, per size and mode."""
    out = {}
    for size in sizes:
        x = images(n, size, 2).to(device)
        y = distort(x.cpu(), 3).to(device)
        fa, fb = fp32.embed(x), fp32.embed(y)
        ha, hb = bf16.embed(x), bf16.embed(y)
        for mode in MODES:
            out[f"{size}px {mode}"] = relative_change(bf16.pairwise(ha, hb, mode=mode), fp32.pairwise(fa, fb, mode=mode))
    return out


def n_by_m(name: str, module: PerceptualDistance, n: int, size: int, loop_pairs: int, args: argparse.Namespace,
           device: torch.device, images: Callable[[int, int, int], Tensor]) -> dict[str, Any]:
    """embed + pairwise for an n x n matrix against a pair-by-pair loop timed on ``loop_pairs`` pairs."""
    sync = syncer(device)
    a = images(n, size, 4).to(device)
    b = distort(a.cpu(), 5).to(device)
    parts: dict[str, list[float]] = {"embed": [], "pairwise": []}
    last: list[Tensor] = []

    def matrix() -> None:
        t = time.perf_counter()
        fa, fb = module.embed(a), module.embed(b)
        sync()
        parts["embed"].append(time.perf_counter() - t)
        t = time.perf_counter()
        last[:] = [module.pairwise(fa, fb)]
        sync()
        parts["pairwise"].append(time.perf_counter() - t)

    total = statistics.median(time_calls(matrix, sync, repeats=args.repeats, budget=args.budget))
    embed, pairwise = (statistics.median(parts[k][1:]) for k in ("embed", "pairwise"))  # [0]: the warm-up
    pairs = [divmod(k, n) for k in range(min(loop_pairs, n * n))]
    for i, j in pairs[:5]:  # warm-up
        module(a[i : i + 1], b[j : j + 1])
    sync()
    t = time.perf_counter()
    looped = torch.stack([module(a[i : i + 1], b[j : j + 1])[0] for i, j in pairs])
    sync()
    per_pair = (time.perf_counter() - t) / len(pairs)
    direct = torch.stack([last[0][i, j] for i, j in pairs])
    return {
        "model": name, "n": n, "m": n, "size": size, "calls": len(parts["embed"]) - 1,
        "matrix_s": total, "embed_s": embed, "pairwise_s": pairwise, "matrix_pairs_per_s": n * n / total,
        "loop_pairs_timed": len(pairs), "loop_s_per_pair": per_pair, "loop_s_extrapolated": per_pair * n * n,
        "speedup": per_pair * n * n / total,
        "max_rel_diff_vs_loop": float(((direct - looped).abs() / looped.abs().clamp_min(1e-12)).max()),
    }


# ----------------------------------------------------------------------------- output
def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model and flags, torch version and threads, device, date: what the numbers depend on."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or "unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    flags = [f for f in wanted if f in fields.get("flags", "").split()]
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "perceptual_sim": __version__, "python": platform.python_version(),
        "device": str(device), "mkldnn": torch.backends.mkldnn.is_available(),
        "compile_env": os.environ.get("PERCEPTUAL_SIM_COMPILE", ""),
        "peak_memory_method": ("torch.cuda.max_memory_allocated" if device.type == "cuda" else
                               "sampled glibc mallinfo2 (uordblks + hblkhd)" if HEAP_BYTES else "unavailable"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def report(result: dict[str, Any]) -> str:
    """The results as markdown."""
    info = result["machine"]
    where = info.get("gpu", info["cpu"])
    machine = (f"{where}; {info['device']}; torch {info['torch']}, {info['torch_threads']} threads "
               f"({info['logical_cpus']} logical CPUs; flags {' '.join(info['cpu_flags']) or 'n/a'}); "
               f"peak memory: {info['peak_memory_method']}.")
    method = (f"Median of up to {result['args']['repeats']} timed calls after a warm-up; % peak is of the "
              f"float32 peak above ({fmt(result['peak'])} GFLOP/s); memory is working memory above the "
              "level before the call.")
    out = [f"# perceptual_sim speed ({info['date']})", "", machine, "", "## Peaks (best of a few calls)", "",
           table(["kernel", "GFLOP/s"], [[k, fmt(v)] for k, v in result["peaks"].items()]), "",
           "## Throughput", "", method, ""]
    rows = []
    for r in result["throughput"]:
        if "skipped" in r:
            rows.append([r["model"], r["precision"], r["size"], r["batch"], "skipped", "", fmt(r["gflop_per_pair"]),
                         "", "", "", r["skipped"]])
        else:
            rows.append([r["model"], r["precision"], r["size"], r["batch"], fmt(r["pairs_per_s"]),
                         fmt(r["ms_per_call"]), fmt(r["gflop_per_pair"]), fmt(r["gflops"]),
                         f"{100 * r['peak_fraction']:.0f}%", fmt(r["peak_memory_mib"]), r["calls"]])
    out += [table(["model", "precision", "px", "batch", "pairs/s", "ms/call", "GFLOP/pair", "GFLOP/s", "% peak",
                   "peak MiB", "timed calls"], rows), ""]
    if result["bfloat16"]:
        out += ["## bfloat16 (autocast) against float32", ""]
        speed = {(r["model"], r["precision"], r["size"], r["batch"]): r.get("pairs_per_s") for r in result["throughput"]}
        rows = []
        for (model, precision, size, batch), fast in speed.items():
            slow = speed.get((model, "float32", size, batch))
            if precision == "bfloat16" and fast and slow:
                rows.append([model, size, batch, fmt(slow), fmt(fast), f"{fast / slow:.2f}x"])
        source = result["args"]["images"] or "synthetic"
        change = (f"Change of the distances from float32 (N x N matrices of {source} natural-ish images and their "
                  "distortions): elementwise relative (max, median), and norm-wise (max change / max distance).")
        out += [table(["model", "px", "batch", "float32 pairs/s", "bfloat16 pairs/s", "speed-up"], rows), "",
                change, ""]
        out += [table(["model", "where", "max rel change", "median rel change", "norm-wise change"],
                      [[m, k, f"{v['max_rel']:.2e}", f"{v['median_rel']:.2e}", f"{v['normwise']:.2e}"]
                       for m, changes in result["bfloat16"].items() for k, v in changes.items()]), ""]
    if result["n_by_m"]:
        out += ["## N x M: embed + pairwise against a pair-by-pair loop", "",
                "The loop is timed on the first pairs only and extrapolated to all N x M pairs.", ""]
        out += [table(["model", "N x M", "px", "embed + pairwise s", "of which pairwise s", "pairs/s",
                       "loop: pairs timed", "loop s/pair", "loop s (extrapolated)", "speed-up", "max rel diff"],
                      [[r["model"], f"{r['n']} x {r['m']}", r["size"], fmt(r["matrix_s"]), fmt(r["pairwise_s"]),
                        fmt(r["matrix_pairs_per_s"]), r["loop_pairs_timed"], fmt(r["loop_s_per_pair"]),
                        fmt(r["loop_s_extrapolated"]), f"{r['speedup']:.0f}x", f"{r['max_rel_diff_vs_loop']:.1e}"]
                       for r in result["n_by_m"]]), ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, metavar="NAME_OR_CARD",
                    help="our models: bundled names or card paths (default: every bundled model)")
    ap.add_argument("--random-widths", nargs="*", type=float, default=None, metavar="W",
                    help="also random-initialised ResNet-6 at these widths (default: 1 0.25 when no model is "
                         "bundled or named, else none)")
    ap.add_argument("--lpips", nargs="*", choices=("alex", "vgg", "squeeze"), default=None, metavar="NET",
                    help="lpips nets to compare with (default: alex vgg; none when given without a value)")
    ap.add_argument("--sizes", nargs="+", type=int, default=None, help="image sides in pixels (default 64 256 512)")
    ap.add_argument("--batches", nargs="+", type=int, default=None, help="pairs per call (default 1 32)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 5)")
    ap.add_argument("--budget", type=float, default=None,
                    help="stop timing a cell after this many seconds (at least one timed call; default 20)")
    ap.add_argument("--max-gflop", type=float, default=None,
                    help=f"skip cells above this many GFLOP per call (default {CPU_MAX_GFLOP:g} on CPU, none on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:K] (default cpu)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--images", type=Path, default=None, help="natural images to use (default: synthetic 1/f images)")
    ap.add_argument("--nxm", type=int, default=None, help="N = M for the N x M benchmark (default 256; 0 skips it)")
    ap.add_argument("--loop-pairs", type=int, default=None, help="pairs the N x M loop is timed on (default 2000)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the results (and machine info) as JSON")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 64 px, batches 1 and 8, 2 repeats, N = M = 32, loop on 100 pairs")
    args = ap.parse_args(argv)
    quick = {"sizes": [64], "batches": [1, 8], "repeats": 2, "budget": 3.0, "nxm": 32, "loop_pairs": 100}
    full = {"sizes": [64, 256, 512], "batches": [1, 32], "repeats": 5, "budget": 20.0, "nxm": 256, "loop_pairs": 2000}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.lpips is None:
        args.lpips = ["alex", "vgg"]
    for name in ("repeats", "loop_pairs"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.sizes) < 16 or min(args.batches) < 1 or args.nxm < 0:
        ap.error("sizes must be >= 16 px, batches >= 1 and --nxm >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not available (torch {torch.__version__})", file=sys.stderr)
        return 2
    if args.max_gflop is None:
        args.max_gflop = math.inf if device.type == "cuda" else CPU_MAX_GFLOP
    specs = args.models if args.models is not None else [card.name for card in list_models()
                                                          if card.name not in REFERENCES]  # lpips has its own rows
    widths = args.random_widths if args.random_widths is not None else ([] if specs else [1.0, 0.25])
    if args.images is not None:
        folder = args.images
        images: Callable[[int, int, int], Tensor] = lambda n, size, seed: folder_images(folder, n, size)
    else:
        images = natural_images

    with torch.inference_mode():
        settings = {k: str(v) if isinstance(v, Path) else None if v == math.inf else v for k, v in vars(args).items()}
        result: dict[str, Any] = {"machine": machine_info(device), "args": settings}
        print("measuring peaks ...", file=sys.stderr)
        result["peaks"] = measure_peaks(device, repeats=3)
        result["peak"] = max(v for k, v in result["peaks"].items() if k.endswith("float32"))
        models = our_models(specs, widths, device)
        subjects = [ours(name, module) for name, module in models] + lpips_models(args.lpips, device)
        result["throughput"], result["bfloat16"], result["n_by_m"] = [], {}, []
        for subject in subjects:
            result["throughput"] += throughput(subject, args.sizes, args.batches, args, device, result["peak"], images)
        if not args.no_bf16:
            for name, module in models:
                twin = bfloat16_twin(module)
                result["throughput"] += throughput(ours(name, twin), args.sizes, args.batches, args, device,
                                                   result["peak"], images)
                result["bfloat16"][name] = bfloat16_change(module, twin, args.sizes, 8, device, images)
        if args.nxm:
            for name, module in models:
                print(f"  {name}: N x M ...", file=sys.stderr)
                result["n_by_m"].append(n_by_m(name, module, args.nxm, min(args.sizes), args.loop_pairs, args,
                                               device, images))
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
