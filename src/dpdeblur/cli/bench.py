"""``dpdeblur-bench``: cost accounting and benchmarks, one subcommand each.

    dpdeblur-bench all --out experiments/results          # make bench: everything below
    dpdeblur-bench cost --model dpanet --size 256 256     # parameters and MACs, op by op
    dpdeblur-bench data --out experiments/results/bench_data.json   # make bench-data
    dpdeblur-bench figures --out experiments/results      # PSNR vs size, per-image gains
    dpdeblur-bench cpu-train --out experiments/results    # layout x precision on the CPU
    dpdeblur-bench profile train-step --model dpanet --width 0.25
    dpdeblur-bench fullres --model dpanet --threads 2     # one model at 1120x1680
    dpdeblur-bench deblur-tiles                           # whole vs tiled deblurring
    dpdeblur-bench correlation-memory                     # the correlation's peak memory
    dpdeblur-bench dcn --out experiments/results          # DPANet: torchvision vs sampled DCN
    dpdeblur-bench precision-accuracy                     # does bf16 autocast hold accuracy?
    dpdeblur-bench gpu-check                              # make gpu-check (CPU: numerics only)

This module only parses arguments; the measurements are :mod:`dpdeblur.research.benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from dpdeblur.cli.common import run_subcommand
from dpdeblur.errors import DpdeblurError
from dpdeblur.research.benchmarks.correlation import (
    CORRELATION_IMPLEMENTATIONS,
    correlation_shapes,
    format_kernel_table,
    format_memory_table,
    measure_correlation_memory,
    time_correlation_kernels,
)
from dpdeblur.research.benchmarks.cpu_training import measure_cpu_training
from dpdeblur.research.benchmarks.data import DPDD_SIZE, measure_data_path
from dpdeblur.research.benchmarks.dcn import measure_dcn, render_dcn
from dpdeblur.research.benchmarks.figures import DEFAULT_BENCH, draw_bench_figures
from dpdeblur.research.benchmarks.fullres import DPDD_FULL_SIZE, measure_full_resolution
from dpdeblur.research.benchmarks.macs import count_registry_macs, format_table, macs_payload
from dpdeblur.research.benchmarks.precision_accuracy import (
    AccuracyPlan,
    measure_precision_accuracy,
    render_precision_accuracy,
)
from dpdeblur.research.benchmarks.profile import profile_data_path, profile_train_step
from dpdeblur.research.benchmarks.selection import (
    build_model,
    resolve_device,
    resolve_model_names,
)
from dpdeblur.research.benchmarks.suite import MAIN_MODELS, SECTIONS, BenchPlan, run_bench
from dpdeblur.research.benchmarks.tiles import measure_tiles
from dpdeblur.research.gpu_check import GpuCheckPlan, run_gpu_check

DEFAULT_RESULTS = Path("experiments/results")


def _positive_size(size: list[int] | None, flag: str) -> tuple[int, int] | None:
    if size is None:
        return None
    if min(size) < 1:
        raise DpdeblurError(f"{flag} must be positive, got {size[0]} {size[1]}")
    return (size[0], size[1])


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _width_label(width: float | None) -> str:
    return f"width {width if width is not None else 'default'}"


# -- cost ------------------------------------------------------------------------------


def add_cost(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="parameters and MACs (complete and thop-like) of registered models",
        description="Parameters and MACs of registered models, op by op: a Markdown table "
        "(plain convs, same-padding convs, deformable convs, correlation, ...), the complete "
        "count and the thop-like count that papers report.",
    )
    parser.add_argument(
        "--model",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="registry names, shell patterns ('dpanet*') or 'all' (default: all)",
    )
    parser.add_argument(
        "--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="input size"
    )
    parser.add_argument(
        "--width",
        type=float,
        default=None,
        help="width override: DPANet's channel multiplier, K3DN's base channels",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also save as JSON")
    parser.set_defaults(func=run_cost)


def run_cost(args: argparse.Namespace) -> int:
    size = _positive_size(args.size, "--size")
    reports = count_registry_macs(resolve_model_names(args.model), size, args.width)
    print(format_table(reports))
    if args.json is not None:
        _write_json(args.json, macs_payload(reports, size, args.width))
        print(f"saved {args.json}")
    return 0


# -- data ------------------------------------------------------------------------------


def add_data(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="data-loader samples/s: PNG decoding vs the .npy cache",
        description="Training-crop throughput of the data path, PNG vs the .npy cache, on a "
        "written DPDD-sized tree (or --root).",
    )
    parser.add_argument(
        "--root", help="a real DPDD root to time (default: write a DPDD-sized tree)"
    )
    parser.add_argument(
        "--images", type=int, default=6, help="images to write when --root is not given"
    )
    parser.add_argument("--size", type=int, nargs=2, default=DPDD_SIZE, metavar=("H", "W"))
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument(
        "--samples", type=int, default=192, help="crops to time per cache variant and round"
    )
    parser.add_argument(
        "--png-samples", type=int, default=None, help="crops per PNG variant (samples // 8)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (median kept)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.set_defaults(func=run_data)


def run_data(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    root = Path(args.root) if args.root else None
    size = _positive_size(list(args.size), "--size")
    results = measure_data_path(
        root,
        args.images,
        size,
        args.crop,
        args.samples,
        args.workers,
        png_samples=args.png_samples,
        rounds=args.rounds,
    )
    for key, value in results.items():
        print(f"{key:28s} {value:.2f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.out:
        _write_json(args.out, results)
        print(f"wrote {args.out}")
    return 0


# -- all -------------------------------------------------------------------------------


def add_all(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "all",
        help="every benchmark: cost, timings, full resolution, training, data (make bench)",
        description="Every benchmark in one run (make bench): bench.json and bench.md in --out.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_RESULTS, help="folder for bench.json/.md"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="registry names, shell patterns or 'all' (default: all)",
    )
    parser.add_argument(
        "--main-models",
        nargs="*",
        default=list(MAIN_MODELS),
        metavar="NAME",
        help="models that also get backward, full-res and training figures "
        f"(default: {' '.join(MAIN_MODELS)})",
    )
    parser.add_argument("--quick", action="store_true", help="shrink every size (smoke test)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if visible)")
    parser.add_argument("--size", nargs=2, type=int, default=None, metavar=("H", "W"))
    parser.add_argument("--full-res-size", nargs=2, type=int, default=None, metavar=("H", "W"))
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (fastest kept)")
    parser.add_argument(
        "--train-budget",
        type=float,
        default=None,
        metavar="S",
        help="CPU: largest estimated training step to time, in seconds (default 8)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=SECTIONS,
        metavar="SECTION",
        help=", ".join(SECTIONS),
    )
    parser.set_defaults(func=run_all)


def run_all(args: argparse.Namespace) -> int:
    plan = BenchPlan.build(
        resolve_model_names(args.models),
        resolve_model_names(args.main_models),
        quick=args.quick,
        device=resolve_device(args.device),
        size=_positive_size(args.size, "--size"),
        full_res_size=_positive_size(args.full_res_size, "--full-res-size"),
        repeat=args.repeat,
        train_budget_s=args.train_budget,
        threads=args.threads,
        sections=tuple(s for s in SECTIONS if s not in args.skip),
    )
    results = run_bench(plan, args.out)
    print(
        f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'} in {results['total_s']:.0f} s"
    )
    return 0


# -- figures ---------------------------------------------------------------------------


def add_figures(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="PSNR vs parameters/MACs beside the papers, per-image PSNR gains (PNG + PDF)",
        description="PSNR against parameters and MACs beside the papers' results, and "
        "per-image PSNR gains of a scored run (PNG + PDF, figures.json).",
    )
    parser.add_argument(
        "--runs",
        nargs="*",
        type=Path,
        default=None,
        metavar="PATH",
        help="run directories or folders of them (default: the log folder, if it has runs)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--bench",
        type=Path,
        default=None,
        help=f"bench.json for registry models' MACs (default: {DEFAULT_BENCH} if present)",
    )
    parser.add_argument(
        "--references", type=Path, nargs="*", default=[], help="extra YAML reference points"
    )
    parser.add_argument(
        "--gain-runs",
        nargs="*",
        type=Path,
        default=None,
        metavar="PATH",
        help="runs to plot per-image gains of (default: the best-PSNR run with input PSNRs)",
    )
    parser.add_argument(
        "--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="MACs at"
    )
    parser.add_argument(
        "--no-count", action="store_true", help="never count MACs (plot only sizes known)"
    )
    parser.set_defaults(func=run_figures)


def run_figures(args: argparse.Namespace) -> int:
    manifest = draw_bench_figures(
        args.out,
        runs=args.runs,
        bench=args.bench,
        references=args.references,
        gain_runs=args.gain_runs,
        size=_positive_size(args.size, "--size"),
        count=not args.no_count,
    )
    print(
        f"{len(manifest['runs'])} runs, {len(manifest['references'])} reference points; wrote "
        + ", ".join(Path(f).name for f in manifest["files"])
    )
    return 0


# -- cpu-train -------------------------------------------------------------------------


def add_cpu_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cpu-train",
        help="CPU training step: NCHW vs NHWC, fp32 vs bf16, fused AdamW",
        description="A CPU training step in NCHW/NHWC, fp32/bf16, fused AdamW or not: "
        "bench_cpu_train.json and .md in --out.",
    )
    parser.add_argument("--model", default=None, help="registry name (default: the demo's)")
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    parser.set_defaults(func=run_cpu_train)


def run_cpu_train(args: argparse.Namespace) -> int:
    results, table = measure_cpu_training(args.model, args.width, args.batch, args.crop, args.steps)
    _write_json(args.out / "bench_cpu_train.json", results)
    (args.out / "bench_cpu_train.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'bench_cpu_train.json'} and bench_cpu_train.md")
    return 0


# -- profile ---------------------------------------------------------------------------


def add_profile(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="where the time goes: a training step, the data path, the correlation",
        description="Where the time goes. train-step: torch.profiler table of one Adam "
        "step. data: cProfile of crop fetches from PNGs and from the .npy cache. "
        "correlation: forward and backward seconds of the correlation kernels at every "
        "shape the model gives them (one thread: process CPU seconds).",
    )
    parser.add_argument("target", choices=("train-step", "data", "correlation"))
    parser.add_argument("--model", default="dpanet")
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rows", type=int, default=20, help="table rows to print")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (correlation: default 1)"
    )
    parser.add_argument("--samples", type=int, default=48, help="data: crops per variant")
    parser.add_argument("--images", type=int, default=2, help="data: DPDD-sized images")
    parser.add_argument(
        "--compare-whole-batch",
        action="store_true",
        help="correlation: also time the kernels before the speed work (whole batch per "
        "band) and check both give bit-identical results",
    )
    parser.add_argument("--repeat", type=int, default=2, help="correlation: timed runs")
    parser.add_argument("--json", type=Path, default=None, help="correlation: save the table")
    parser.set_defaults(func=run_profile)


def run_profile(args: argparse.Namespace) -> int:
    if args.target == "data":
        if args.threads:
            torch.set_num_threads(args.threads)
        print(profile_data_path(args.images, args.crop, args.samples, args.rows))
        return 0
    model = build_model(args.model, args.width)
    if args.target == "train-step":
        if args.threads:
            torch.set_num_threads(args.threads)
        table = profile_train_step(model, args.batch, args.crop, args.rows)
        print(f"{args.model} ({_width_label(args.width)}), {table}")
        return 0
    shapes = correlation_shapes(model, args.batch, args.crop)
    if not shapes:
        raise DpdeblurError(f"{args.model} has no correlation layer", fix="try dpanet or k3dn")
    torch.set_num_threads(args.threads or 1)
    rows = time_correlation_kernels(shapes, args.repeat, args.compare_whole_batch)
    clock = "process CPU" if torch.get_num_threads() == 1 else "wall"
    print(
        f"correlation in {args.model} ({_width_label(args.width)}), batch {args.batch} x "
        f"{args.crop}x{args.crop}; {torch.get_num_threads()} thread(s), {clock} seconds, "
        f"best of {args.repeat}\n"
    )
    print(format_kernel_table(rows))
    if args.json is not None:
        _write_json(args.json, rows)
    return 0


# -- fullres ---------------------------------------------------------------------------


def add_fullres(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fullres",
        help="one model's full-resolution inference: seconds and peak memory",
        description="Full-resolution inference of one model (random weights at any width, "
        "or --weights): seconds and peak memory; on the CPU in a fresh process, so the "
        "peak resident set is this model's alone.",
    )
    parser.add_argument("--model", default="dpanet", help="registry name (default: dpanet)")
    parser.add_argument(
        "--size", nargs=2, type=int, default=list(DPDD_FULL_SIZE), metavar=("H", "W")
    )
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="a checkpoint that names its model (dpdeblur-convert output or a run's .ckpt)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (fastest kept)")
    parser.add_argument("--json", type=Path, default=None, help="save the result here")
    parser.set_defaults(func=run_fullres)


def run_fullres(args: argparse.Namespace) -> int:
    device = torch.device(resolve_device(args.device))
    size = _positive_size(args.size, "--size")
    result = measure_full_resolution(
        args.model, size, device, args.repeat, args.threads, args.width, args.weights
    )
    result = {
        "model": args.model if args.weights is None else str(args.weights),
        "width": args.width,
        **result,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        _write_json(args.json, result)
    return 0


# -- deblur-tiles ----------------------------------------------------------------------


def add_deblur_tiles(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deblur-tiles",
        help="full-resolution deblurring on the CPU, whole and tiled: seconds, peak memory",
        description="Full-resolution deblurring on the CPU, whole and tiled (each setting in "
        "a fresh process): seconds and peak tensor memory.",
    )
    parser.add_argument("--model", default="dpanet")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument(
        "--size", nargs=2, type=int, default=list(DPDD_FULL_SIZE), metavar=("H", "W")
    )
    parser.add_argument(
        "--tiles", nargs="+", type=int, default=[0, 512, 256], help="tile sides (0: whole)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_RESULTS / "deblur_tiles_cpu.json", metavar="PATH"
    )
    parser.set_defaults(func=run_deblur_tiles)


def run_deblur_tiles(args: argparse.Namespace) -> int:
    size = _positive_size(args.size, "--size")
    result = measure_tiles(args.model, args.width, size, args.tiles, args.threads)
    if Path(sys.argv[0]).name == "dpdeblur-bench":
        result["command"] = " ".join(["dpdeblur-bench", *sys.argv[1:]])
    _write_json(args.json, result)
    print(f"wrote {args.json}")
    return 0


# -- correlation-memory ----------------------------------------------------------------


def add_correlation_memory(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "correlation-memory",
        help="peak memory and time of the correlation layer against its sizes",
        description="Peak memory and seconds of the correlation layer (d = 4), forward and "
        "forward+backward, against the implementation that stacks all shifted copies.",
    )
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--impls",
        nargs="+",
        default=list(CORRELATION_IMPLEMENTATIONS),
        choices=list(CORRELATION_IMPLEMENTATIONS),
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    parser.set_defaults(func=run_correlation_memory)


def run_correlation_memory(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    size = _positive_size(args.size, "--size")
    results = [
        measure_correlation_memory(impl, args.channels, size, device, backward)
        for impl in args.impls
        for backward in (False, True)
    ]
    print(f"correlation, C={args.channels}, {size[0]}x{size[1]}, d=4, {device}\n")
    print(format_memory_table(results))
    if args.json is not None:
        _write_json(args.json, results)
    return 0


# -- dcn -------------------------------------------------------------------------------


def add_dcn(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dcn",
        help="DPANet forward and forward+backward with torchvision's and the sampled DCN",
        description="DPANet's deformable convs, torchvision's kernel against the sampled "
        "one, alternated in one process on the CPU: dcn.json and dcn.md in --out.",
    )
    parser.add_argument("--model", default="dpanet", help="a DPANet registry name")
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2, help="alternated runs (fastest kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS)
    parser.set_defaults(func=run_dcn)


def run_dcn(args: argparse.Namespace) -> int:
    size = _positive_size(args.size, "--size")
    results = measure_dcn(args.model, args.width, size, args.batch, args.repeat, args.threads)
    results["command"] = " ".join(["dpdeblur-bench", *sys.argv[1:]])
    _write_json(args.out / "dcn.json", results)
    (args.out / "dcn.md").write_text(render_dcn(results))
    print(render_dcn(results))
    print(f"wrote {args.out / 'dcn.json'} and dcn.md")
    return 0


# -- precision-accuracy ----------------------------------------------------------------


def add_precision_accuracy(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "precision-accuracy",
        help="does bf16 autocast hold accuracy? fp32 vs bf16 training, scored in fp32",
        description="Trains each model from one initialisation on the same synthetic DP "
        "batches twice, in fp32 and under bf16 autocast, for several seeds; scores both in "
        "fp32 (PSNR on held-out scenes) and says per model whether bf16 holds accuracy "
        "(dpdeblur.research.benchmarks.precision_accuracy).",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(AccuracyPlan.models),
        metavar="NAME",
        help=f"registry names or patterns (default: {' '.join(AccuracyPlan.models)})",
    )
    default_steps = [str(AccuracyPlan.steps), *(f"{m}={n}" for m, n in AccuracyPlan.model_steps)]
    parser.add_argument(
        "--steps",
        nargs="+",
        default=None,
        metavar="N|NAME=N",
        help="optimiser steps per run; NAME=N gives one model its own "
        f"(default: {' '.join(default_steps)})",
    )
    parser.add_argument("--seeds", type=int, default=AccuracyPlan.seeds, help="training seeds")
    parser.add_argument("--crop", type=int, default=AccuracyPlan.crop, help="scene side (px)")
    parser.add_argument("--batch", type=int, default=AccuracyPlan.batch)
    parser.add_argument("--lr", type=float, default=AccuracyPlan.lr, help="AdamW lr")
    parser.add_argument("--warmup", type=int, default=AccuracyPlan.warmup, help="warm-up steps")
    parser.add_argument("--train-scenes", type=int, default=AccuracyPlan.train_scenes)
    parser.add_argument("--test-scenes", type=int, default=AccuracyPlan.test_scenes)
    parser.add_argument(
        "--max-coc", type=float, default=AccuracyPlan.max_coc_px, help="largest blur radius (px)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--quick", action="store_true", help="a few steps at 32x32 (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "precision_accuracy.json")
    parser.set_defaults(func=run_precision_accuracy)


def _parse_steps(items: list[str] | None) -> tuple[int, tuple[tuple[str, int], ...]]:
    """``--steps``: the count for every model and the ``NAME=N`` pairs (not given: the
    plan's defaults)."""
    if items is None:
        return AccuracyPlan.steps, AccuracyPlan.model_steps
    default, pairs = AccuracyPlan.steps, []
    for item in items:
        name, _, count = item.rpartition("=")
        if not count.isdigit() or int(count) < 1:
            raise DpdeblurError(
                f"--steps {item}: not a positive step count", fix="e.g. --steps 300 k3dn_tiny=200"
            )
        if name:
            pairs.append((name, int(count)))
        else:
            default = int(count)
    return default, tuple(pairs)


def run_precision_accuracy(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.crop % 8 or min(args.seeds, args.batch, args.warmup, args.test_scenes) < 1:
        raise DpdeblurError(
            "--crop must be a multiple of 8, --seeds, --batch, --warmup and --test-scenes "
            "at least 1",
            fix="e.g. --crop 64 --seeds 3 --batch 4",
        )
    steps, model_steps = _parse_steps(args.steps)
    plan = AccuracyPlan(
        models=tuple(resolve_model_names(args.models)),
        steps=steps,
        model_steps=model_steps,
        seeds=args.seeds,
        crop=args.crop,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        train_scenes=max(args.train_scenes, args.batch),
        test_scenes=args.test_scenes,
        max_coc_px=args.max_coc,
        device=resolve_device(args.device),
    )
    unknown = sorted({name for name, _ in model_steps} - set(plan.models))
    if unknown and args.steps is not None:
        raise DpdeblurError(
            f"--steps names {', '.join(unknown)}, which --models does not run",
            fix="add it to --models or drop its NAME=N",
        )
    plan = plan.quick() if args.quick else plan
    by_hand = Path(sys.argv[0]).name in ("dpdeblur-bench", "bench.py")
    command = " ".join(["dpdeblur-bench", *sys.argv[1:]]) if by_hand else None

    def save(results: dict) -> None:  # after every model: an interrupted run keeps them
        _write_json(args.out, {"command": command, **results})

    results = measure_precision_accuracy(plan, on_model=save)
    print(render_precision_accuracy(results))
    print(f"wrote {args.out}")
    return 0


# -- gpu-check ------------------------------------------------------------------------------


def add_gpu_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gpu-check",
        help="CUDA tests, GPU numerics vs float64, training steps, trainer=gpu/ddp, inference",
        description="What only a GPU can check, in at most 8 minutes (make gpu-check; "
        "dpdeblur.research.gpu_check). Without CUDA: the numerics on the CPU, the rest "
        "recorded as skipped.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "gpu_check.json")
    parser.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto")
    parser.set_defaults(func=run_gpu_check_command)


def run_gpu_check_command(args: argparse.Namespace) -> int:
    plan = GpuCheckPlan.for_device(resolve_device(args.device))
    results = run_gpu_check(plan, args.out)
    for line in results["failures"]:
        print(f"FAILED {line}", file=sys.stderr)
    print(f"wrote {args.out}: {'ok' if results['ok'] else 'FAILED'} in {results['total_s']:.0f} s")
    return 0 if results["ok"] else 1


SUBCOMMANDS = (
    add_cost,
    add_data,
    add_all,
    add_figures,
    add_profile,
    add_cpu_train,
    add_fullres,
    add_deblur_tiles,
    add_correlation_memory,
    add_dcn,
    add_precision_accuracy,
    add_gpu_check,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpdeblur-bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
