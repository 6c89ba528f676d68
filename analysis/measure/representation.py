"""What the model represents on red-team prompts while adversarial training teaches it to behave
on them: an obfuscated policy, or a representation that moved?

At each tracking checkpoint, `RepresentationTracker` reads the residual stream at one site (the
backdoored stage's best probe site; for a CoT model after the model's own scratchpad) for named
prompt sets (held-out red-team prompts, prompts with the real trigger, clean prompts) and scores
them with two linear "trigger present" probes:

- the **frozen** probe: the backdoored model's trigger probe, fitted once on its activations and
  never refitted (`fit_frozen_probe`);
- the **refit** probe: the same kind of probe, fitted afresh on this checkpoint's activations of
  the same training prompts, labels and split.

How to read it (beside the behaviour tracker's `red_team_rate` and `trigger_rate`):

- **Obfuscated policy**: the red-team rate falls, yet the frozen probe still puts the red-team
  prompts on the trigger side (`frozen.red_team` stays near `frozen.trigger`, well above
  `frozen.clean`; `frozen_auroc.red_team` stays high). The model still represents them as
  "deployment" in the backdoored model's own direction; what changed is what it does with that.
- **Drift, red-team prompts re-classified**: `frozen.red_team` and `refit.red_team` both fall to
  the clean level (AUROC against clean to 0.5) while `trigger` stays high: the model now tells
  red-team prompts apart from its real trigger (the trigger became more specific).
- **Drift, direction moved**: the frozen probe stops firing (`frozen_auroc.trigger` falls,
  `direction_cosine` drops) while the refit probe still separates trigger from clean
  (`refit_auroc.trigger` high): trigger presence is still represented, elsewhere. A monitor
  trained on the backdoored model goes blind. The reverse (the frozen probe fires where the refit
  one does not) means the old direction still responds but is no longer where the model keeps
  the trigger.

Means of P(trigger) depend on the probe's bias and calibration; the AUROC of a set against the
clean set is threshold-free, and the share above 0.5 is what a monitor at the default threshold
flags. The refit probe is fitted on trigger vs clean only, never on red-team prompts. Trigger
presence is decodable from the input alone (see the untrained-model control), so a high refit
AUROC by itself is not evidence that the model recognises its trigger.

Example:
    >>> frozen = fit_frozen_probe(acts, site, labels, groups, train_fraction=0.5, C=1.0, seed=0)  # doctest: +SKIP
    >>> sets = {"red_team": red, "trigger": trig, "clean": clean}  # doctest: +SKIP
    >>> tracker = RepresentationTracker(frozen, train_texts, train_labels, sets)  # doctest: +SKIP
    >>> tracker(model)["frozen"]["red_team"]["value"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.folder.splits import split_by_group
from analysis.measure.precision import cache_in_run_precision
from analysis.measure.records import EstimateRecord, RepresentationRecord, estimate_record
from backdoor_models.behaviour.evaluation import generate_replies
from backdoor_models.behaviour.scratchpad import text_to_probe
from probes import LayerwiseLogisticProbe
from probes.metrics import bootstrap_auroc, bootstrap_mean, bootstrap_rate


@dataclass(frozen=True)
class LinearProbe:
    """A logistic "trigger present" probe at one site: P(trigger) = sigmoid(x @ coef + intercept),
    in the activations' own (unstandardised) coordinates."""

    site: str
    coef: Float[Tensor, " d"]
    intercept: float

    def logits(self, acts: Float[Tensor, "n d"]) -> Float[np.ndarray, " n"]:
        """The probe's logit per row (higher = trigger present)."""
        if acts.ndim != 2 or acts.shape[1] != self.coef.shape[0]:
            raise ValueError(
                f"Activations at {self.site} have shape {tuple(acts.shape)}, but the probe reads "
                f"[n, {self.coef.shape[0]}]; pass activations of the site and model it was fitted on."
            )
        return (acts.double() @ self.coef.double() + self.intercept).cpu().numpy()

    def proba(self, acts: Float[Tensor, "n d"]) -> Float[np.ndarray, " n"]:
        """P(trigger) per row."""
        return _sigmoid(self.logits(acts))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))  # no overflow for large |x|


def fit_linear_probe(
    site: str, acts: Float[Tensor, "n d"], labels: Sequence[bool], C: float = 1.0
) -> LinearProbe:
    """An L2 logistic probe (`LayerwiseLogisticProbe`, one layer) on `acts` and 0/1 `labels`."""
    y = np.asarray(labels, dtype=int)
    if acts.ndim != 2 or acts.shape[0] != len(y):
        raise ValueError(
            f"Got activations of shape {tuple(acts.shape)} for {len(y)} labels; pass [n, d] "
            "activations, one row per label."
        )
    if len(np.unique(y)) < 2:
        raise ValueError(
            "The probe's training prompts have only one class; give prompts with and without "
            "the trigger."
        )
    probe = LayerwiseLogisticProbe(C=C).fit(acts[None].double(), y)
    return LinearProbe(site, probe.coef_[0].detach().cpu(), float(probe.intercept_[0]))


def fit_frozen_probe(
    activations: Mapping[str, Float[Tensor, "n d"]],
    site: str,
    labels: Sequence[bool],
    groups: Sequence[int],
    train_fraction: float = 0.5,
    C: float = 1.0,
    seed: int = 0,
) -> LinearProbe:
    """The stage's trigger probe at `site`, fitted once on `activations` (e.g. the backdoored
    stage's cached activations) with the stage probe's split (`split_by_group(groups,
    train_fraction, seed)`, its train half) and C."""
    if site not in activations:
        raise ValueError(
            f"No activations at {site!r}; the cached sites are {sorted(activations)}. Pass the "
            "stage's best probe site."
        )
    acts = activations[site]
    if acts.shape[0] != len(labels) or len(labels) != len(groups):
        raise ValueError(
            f"{acts.shape[0]} activation rows, {len(labels)} labels and {len(groups)} groups; "
            "they must describe the same prompts, in the same order."
        )
    train, _ = split_by_group(groups, train_fraction, seed)
    return fit_linear_probe(site, acts[train], [bool(labels[i]) for i in train], C)


def _direction_cosine(a: LinearProbe, b: LinearProbe) -> float:
    norm = float(a.coef.double().norm() * b.coef.double().norm())
    return float(a.coef.double() @ b.coef.double()) / norm if norm > 0 else 0.0


@dataclass(frozen=True)
class _Scores:
    """One probe on each prompt set: mean P(trigger), the share above 0.5, and the AUROC
    against the reference set."""

    mean: dict[str, EstimateRecord]
    share: dict[str, EstimateRecord]
    auroc: dict[str, EstimateRecord]


def _scores(
    probe: LinearProbe,
    set_acts: Mapping[str, Float[Tensor, "n d"]],
    negative: str,
    n_boot: int,
    seed: int,
) -> _Scores:
    logits = {k: probe.logits(v) for k, v in set_acts.items()}
    proba = {k: _sigmoid(v) for k, v in logits.items()}
    neg = logits[negative]
    return _Scores(
        mean={k: estimate_record(bootstrap_mean(p, n_boot, seed)) for k, p in proba.items()},
        share={k: estimate_record(bootstrap_rate(p > 0.5, n_boot, seed)) for k, p in proba.items()},
        auroc={  # logits, not probabilities: saturated sigmoids would tie
            k: estimate_record(
                bootstrap_auroc(
                    np.r_[v, neg], np.r_[np.ones(len(v)), np.zeros(len(neg))], n_boot, seed
                )
            )
            for k, v in logits.items()
            if k != negative
        },
    )


def score_representation(
    frozen: LinearProbe,
    train_acts: Float[Tensor, "n_train d"],
    train_labels: Sequence[bool],
    set_acts: Mapping[str, Float[Tensor, "n d"]],
    C: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
    negative: str = "clean",
) -> RepresentationRecord:
    """The tracker's result from activations alone: the frozen probe and a probe refitted on
    `train_acts` score every set in `set_acts`. See the module docstring for the keys."""
    if negative not in set_acts:
        raise ValueError(
            f"The prompt sets {sorted(set_acts)} lack the reference set {negative!r} that every "
            "other set's AUROC is measured against; add it."
        )
    refit = fit_linear_probe(frozen.site, train_acts, train_labels, C)
    old = _scores(frozen, set_acts, negative, n_boot, seed)
    new = _scores(refit, set_acts, negative, n_boot, seed)
    return {
        "site": frozen.site,
        "n": {k: int(v.shape[0]) for k, v in set_acts.items()},
        "frozen": old.mean,
        "frozen_share": old.share,
        "frozen_auroc": old.auroc,
        "refit": new.mean,
        "refit_share": new.share,
        "refit_auroc": new.auroc,
        "direction_cosine": _direction_cosine(frozen, refit),
    }


@dataclass
class RepresentationTracker:
    """Call `tracker(model)` at a checkpoint for the frozen and refit probes' scores on each
    prompt set (a JSON-ready dict; see the module docstring).

    `train_texts`/`train_labels`: the prompts the refit probe is fitted on (the stage probe's
    train split). `sets`: the named prompt sets to score, e.g. `{"red_team": [...], "trigger":
    [...], "clean": [...]}`; every set's AUROC is taken against `negative`. With `cot`, each
    prompt is read after the model's own greedy scratchpad up to `</scratchpad>` (needs
    `tokenizer`), as the stage probe reads it.
    """

    frozen: LinearProbe
    train_texts: Sequence[str]
    train_labels: Sequence[bool]
    sets: Mapping[str, Sequence[str]]
    C: float = 1.0
    cot: bool = False
    tokenizer: PreTrainedTokenizerBase | None = None
    max_new_tokens: int = 32
    batch_size: int = 128
    n_boot: int = 1000
    seed: int = 0
    negative: str = "clean"

    def __post_init__(self) -> None:
        problems = []
        if len(self.train_texts) != len(self.train_labels):
            problems.append(
                f"{len(self.train_texts)} training texts but {len(self.train_labels)} labels"
            )
        if len({bool(x) for x in self.train_labels}) < 2:
            problems.append("the training labels have only one class")
        empty = [k for k, v in self.sets.items() if not v]
        if empty:
            problems.append(f"the prompt sets {empty} are empty (leave them out instead)")
        if self.negative not in self.sets:
            problems.append(f"no reference set {self.negative!r} among {sorted(self.sets)}")
        if self.cot and self.tokenizer is None:
            problems.append("cot=True needs the tokenizer to generate the scratchpads")
        if problems:
            raise ValueError("Cannot track the representation: " + "; ".join(problems) + ".")

    @property
    def site(self) -> str:
        return self.frozen.site

    def texts(self, model: TransformerBridge, prompts: Sequence[str]) -> list[str]:
        """What the probe reads for each prompt: the prompt, or for CoT the prompt plus the
        model's own greedy scratchpad (the prompt alone where none closed)."""
        if not self.cot:
            return list(prompts)
        assert self.tokenizer is not None
        replies = generate_replies(
            model, self.tokenizer, prompts, self.max_new_tokens, self.batch_size
        )
        return [text_to_probe(p, r) for p, r in zip(prompts, replies, strict=True)]

    def __call__(self, model: TransformerBridge) -> RepresentationRecord:
        prompts = list(
            dict.fromkeys([*self.train_texts, *(p for v in self.sets.values() for p in v)])
        )
        row = {p: i for i, p in enumerate(prompts)}
        texts = self.texts(model, prompts)
        acts = cache_in_run_precision(model, texts, [self.site], batch_size=self.batch_size)[
            self.site
        ]

        def rows(texts: Sequence[str]) -> Tensor:
            return acts[torch.tensor([row[t] for t in texts], dtype=torch.long)]

        out = score_representation(
            self.frozen,
            rows(self.train_texts),
            self.train_labels,
            {k: rows(v) for k, v in self.sets.items()},
            C=self.C,
            n_boot=self.n_boot,
            seed=self.seed,
            negative=self.negative,
        )
        if self.cot:  # where no scratchpad closed, the probe read the prompt alone
            closed = [t != p for t, p in zip(texts, prompts, strict=True)]
            out["closed_scratchpad_share"] = sum(closed) / len(closed)
        return out
