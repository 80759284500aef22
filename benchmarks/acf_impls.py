"""Benchmark: fused (``sdpa``) vs naive ACF, time and peak memory, forward + backward.

The ACF module runs on the CFNet head's feature map: a (512, 1024)² input at output stride 8 gives
an h×w = (64, 128)² map with N = h·w query positions and M = ⌈h/2⌉·⌈w/2⌉ pooled keys. Each
(impl, size) runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own;
the reported peak is the growth of that high-water mark over the step, i.e. the step's own memory.

    python benchmarks/acf_impls.py                      # table on stdout + benchmarks/results/
    python benchmarks/acf_impls.py --sizes 512 --reps 5

Not a test: numbers depend on the machine, which the results record (``results_files``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _worker(args: argparse.Namespace) -> None:
    import torch

    from cfnet.models.acf import ACFModule

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    side = args.size // args.output_stride
    module = ACFModule(args.channels, args.heads, args.k, "conv", 0.0, args.impl).train()
    x = torch.randn(args.batch, args.channels, side, side, requires_grad=True)

    def step() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).sum().backward()

    step()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "impl": args.impl,
                "size": args.size,
                "feature": side,
                "N": side * side,
                "M": ((side + 1) // 2) ** 2,
                "seconds": statistics.median(times),
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def _baseline_rss(args: argparse.Namespace) -> float:
    """Peak RSS of a worker that builds the same module and input but runs no step (MiB)."""
    code = (
        "import resource, torch\n"
        "from cfnet.models.acf import ACFModule\n"
        f"m = ACFModule({args.channels}, {args.heads}, {args.k}, 'conv', 0.0, 'sdpa')\n"
        f"x = torch.randn({args.batch}, {args.channels}, {args.size // args.output_stride}, "
        f"{args.size // args.output_stride}, requires_grad=True)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--impls", nargs="+", default=["naive", "sdpa"])
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument(
        "--grid",
        nargs="+",
        default=["4x2", "8x1"],
        help="HxK settings: 4x2 is the paper's best, 8x1 the authors' code default",
    )
    parser.add_argument("--heads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--output-stride", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    rows = []
    for setting in args.grid:
        heads, k = (int(v) for v in setting.lower().split("x"))
        for size in args.sizes:
            cfg = argparse.Namespace(**{**vars(args), "size": size, "heads": heads, "k": k})
            baseline = _baseline_rss(cfg)
            for impl in args.impls:
                cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--size", str(size)]
                for flag in ("channels", "heads", "k", "batch", "output_stride", "reps", "threads"):
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(cfg, flag))]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                row.update(heads=heads, k=k, peak_mib=row["peak_rss_mib"] - baseline)
                rows.append(row)
                print(
                    f"  H={heads} K={k} {impl:5s} {size}²: {row['seconds']:.3f} s, "
                    f"{row['peak_mib']:.0f} MiB",
                    flush=True,
                )

    header = (
        f"ACF module forward+backward, fp32, batch {args.batch}, channels {args.channels}, "
        f"OS{args.output_stride}, {args.threads} threads, median of {args.reps}"
    )
    lines = [
        header,
        "",
        "| H×K | input | N × M | impl | time (s) | peak memory (MiB) | speed-up | memory saving |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting in args.grid:
        heads, k = (int(v) for v in setting.lower().split("x"))
        for size in args.sizes:
            by_impl = {
                r["impl"]: r for r in rows if (r["size"], r["heads"], r["k"]) == (size, heads, k)
            }
            for impl, r in by_impl.items():
                ratio_t = ratio_m = ""
                if impl == "sdpa" and "naive" in by_impl:
                    ratio_t = f"{by_impl['naive']['seconds'] / r['seconds']:.1f}×"
                    ratio_m = f"{by_impl['naive']['peak_mib'] / max(r['peak_mib'], 1.0):.1f}×"
                lines.append(
                    f"| {heads}×{k} | {size}² | {r['N']} × {r['M']} | {impl} | {r['seconds']:.3f} "
                    f"| {r['peak_mib']:.0f} | {ratio_t} | {ratio_m} |"
                )
    table = "\n".join(lines)
    print()
    print(table)
    from results_files import save_results  # (not in the workers: their memory is measured)

    save_results("acf_impls", {"config": header, "threads": args.threads, "rows": rows}, table)


if __name__ == "__main__":
    main()
