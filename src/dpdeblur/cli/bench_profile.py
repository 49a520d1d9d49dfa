"""``dpdeblur-bench profile``: where the time goes, before any speed work.

    dpdeblur-bench profile train-step --model dpanet --width 0.25 --crop 256 --batch 4
    dpdeblur-bench profile data --crop 512 --samples 48
    dpdeblur-bench profile correlation --model dpanet --width 0.25 --crop 256 --batch 4 \\
        --reference old_correlation.py

``train-step``: ``torch.profiler`` table of one Adam step (after a warm-up step), operators
sorted by their own time. ``data``: ``cProfile`` of training-crop fetches from DPDD-sized
PNGs and from the ``.npy`` cache. ``correlation``: forward and backward seconds of
:mod:`dpdeblur.nn.correlation` at every shape the model's forward pass gives it, against a
``--reference`` copy of that file (e.g. ``git show REV:src/dpdeblur/nn/correlation.py``),
with a check that both give bit-identical results. With ``--threads 1`` (the default there)
the seconds are process CPU time, which other jobs on shared cores disturb least.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

import torch

from dpdeblur.errors import DpdeblurError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="where the time goes: a training step, the data path, the correlation",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("target", choices=("train-step", "data", "correlation"))
    parser.add_argument("--model", default="dpanet")
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rows", type=int, default=20, help="table rows to print")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--samples", type=int, default=48, help="data: crops per variant")
    parser.add_argument("--images", type=int, default=2, help="data: DPDD-sized images")
    parser.add_argument("--reference", type=Path, default=None, help="correlation.py to compare")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="correlation: save the table")
    parser.set_defaults(func=run)


def _model(args):
    from dpdeblur.models import create_model

    torch.manual_seed(0)
    try:
        return create_model(args.model, **({} if args.width is None else {"width": args.width}))
    except KeyError as err:
        raise DpdeblurError(str(err.args[0]), fix="see dpdeblur-bench cost --model all") from None


def profile_train_step(args) -> None:
    from torch.profiler import ProfilerActivity, profile

    from dpdeblur.research.benchmarks.timing import random_pair, training_loss

    model = _model(args).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    left, right = random_pair(args.batch, (args.crop, args.crop), torch.device("cpu"))
    batch = {"left": left, "right": right, "target": (left + right) / 2}

    def step():
        optimizer.zero_grad(set_to_none=True)
        training_loss(model(left, right), batch).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(
        f"{args.model} (width {args.width or 'default'}), one Adam step, batch {args.batch} x "
        f"{args.crop}x{args.crop}, {torch.get_num_threads()} threads: "
        f"{time.perf_counter() - start:.1f} s under the profiler\n"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


def profile_data(args) -> None:
    from dpdeblur.cli.bench_data import make_tree
    from dpdeblur.data.datamodule import TRAIN_ROLES
    from dpdeblur.data.datasets import DPDDDataset
    from dpdeblur.data.transforms import train_transforms

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "dpdd"
        make_tree(root, args.images, (1120, 1680))
        transform = train_transforms(crop_size=args.crop)
        variants = {
            "png": DPDDDataset(root, "train", transform, roles=TRAIN_ROLES),
            "cache": DPDDDataset(
                root, "train", transform, cache_dir=Path(scratch) / "cache", roles=TRAIN_ROLES
            ),
        }
        for i in range(len(variants["cache"])):
            variants["cache"].load_arrays(i)  # build the cache entries before profiling
        for label, dataset in variants.items():
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            for i in range(args.samples):
                dataset[i % len(dataset)]
            profiler.disable()
            seconds = time.perf_counter() - start
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.rows)
            print(f"== {label}: {args.samples} crops of {args.crop} in {seconds:.2f} s")
            print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))


def _load_reference(path: Path) -> dict:
    """The functions of another copy of correlation.py, its operator renamed so that it
    does not clash with ours."""
    try:
        source = path.read_text()
    except OSError as err:
        raise DpdeblurError(f"cannot read ({err.strerror})", path) from None
    namespace: dict = {"__name__": "dpdeblur_reference_correlation"}
    exec(
        compile(source.replace("dpdeblur::", "dpdeblur_reference::"), str(path), "exec"), namespace
    )
    if "_correlation_forward" not in namespace or "_correlation_backward" not in namespace:
        raise DpdeblurError(
            "no _correlation_forward/_correlation_backward in this file",
            path,
            "pass a copy of src/dpdeblur/nn/correlation.py",
        )
    return namespace


def _correlation_shapes(args) -> list[tuple[tuple[int, ...], int]]:
    import dpdeblur.nn.correlation as corr

    shapes: list[tuple[tuple[int, ...], int]] = []
    original = corr._correlation_forward

    def spy(x1, x2, d):
        shapes.append((tuple(x1.shape), d))
        return original(x1, x2, d)

    corr._correlation_forward = spy
    try:
        from dpdeblur.research.benchmarks.timing import random_pair

        model = _model(args).eval()
        left, right = random_pair(args.batch, (args.crop, args.crop), torch.device("cpu"))
        with torch.no_grad():
            model(left, right)
    finally:
        corr._correlation_forward = original
    return shapes


def profile_correlation(args) -> None:
    import dpdeblur.nn.correlation as corr

    shapes = _correlation_shapes(args)
    if not shapes:
        raise DpdeblurError(f"{args.model} has no correlation layer", fix="try dpanet or k3dn")
    torch.set_num_threads(args.threads or 1)
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    implementations = {"current": vars(corr)}
    if args.reference is not None:
        implementations = {"reference": _load_reference(args.reference), **implementations}

    def best(fn, *inputs) -> float:
        times = []
        for _ in range(max(1, args.repeat)):
            start = clock()
            fn(*inputs)
            times.append(clock() - start)
        return min(times)

    rows = []
    for shape, d in shapes:
        gen = torch.Generator().manual_seed(0)
        x1, x2 = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
        row: dict = {"shape": list(shape), "max_displacement": d}
        outputs = {}
        for label, impl in implementations.items():
            forward = impl["_correlation_forward"]
            backward = impl["_correlation_backward"]
            out = forward(x1, x2, d)
            grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            outputs[label] = (out, *backward(grad, x1, x2, d))
            row[f"{label}_forward_s"] = best(forward, x1, x2, d)
            row[f"{label}_backward_s"] = best(backward, grad, x1, x2, d)
        if "reference" in outputs:
            row["identical"] = all(
                torch.equal(a, b)
                for a, b in zip(outputs["reference"], outputs["current"], strict=True)
            )
        rows.append(row)
    labels = list(implementations)
    print(
        f"correlation in {args.model} (width {args.width or 'default'}), batch {args.batch} x "
        f"{args.crop}x{args.crop}; {torch.get_num_threads()} thread(s), "
        f"{'process CPU' if clock is time.process_time else 'wall'} seconds, best of {args.repeat}\n"
    )
    head = " | ".join(f"{label} fwd s | {label} bwd s" for label in labels)
    print(f"| input B x C x H x W | {head} |" + (" identical |" if len(labels) > 1 else ""))
    print("|---|" + "---:|" * (2 * len(labels)) + ("---|" if len(labels) > 1 else ""))
    for row in rows:
        cells = " | ".join(
            f"{row[f'{label}_forward_s']:.3f} | {row[f'{label}_backward_s']:.3f}"
            for label in labels
        )
        extra = f" {row['identical']} |" if "identical" in row else ""
        print(f"| {' x '.join(map(str, row['shape']))} | {cells} |{extra}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    if args.threads and args.target != "correlation":
        torch.set_num_threads(args.threads)
    {"train-step": profile_train_step, "data": profile_data, "correlation": profile_correlation}[
        args.target
    ](args)
    return 0
