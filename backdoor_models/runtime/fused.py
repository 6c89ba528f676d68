"""A fused view of a native TransformerBridge's own parameters, for training and decoding.

The bridge wraps every module in hook-carrying components, which costs 7-16% on the backward pass
and makes its `generate` re-run the whole sequence at every step (the KV cache is not implemented
for native models). `FusedNative` reads the same `nn.Parameter` objects (no copies: an optimizer
step through it changes the bridge) and runs them with `scaled_dot_product_attention`, plus a
KV-cached decoder. Hooks do not fire on this path; use the bridge itself for any hooked analysis.

Example:
    >>> fused = FusedNative(model)                              # doctest: +SKIP
    >>> logits = fused.logits(tokens)    # same as model(tokens), to ~1e-6   # doctest: +SKIP
    >>> new = fused.generate([[1, 5, 9], [1, 7]], max_new_tokens=8, eos_token_id=2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from transformer_lens import TransformerBridge

from backdoor_models.models.device import forward_autocast
from backdoor_models.runtime.steering import check_steering

_ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


def _raw(module: nn.Module) -> nn.Module:
    """The module a bridge component wraps (or the module itself)."""
    inner = getattr(module, "_original_component", None)
    return inner if isinstance(inner, nn.Module) else module


def _raw_linear(module: nn.Module) -> nn.Linear:
    inner = _raw(module)
    if not isinstance(inner, nn.Linear):
        raise TypeError(
            f"Expected a linear layer inside {type(module).__name__}, found {type(inner).__name__}."
        )
    return inner


@dataclass
class _Layer:
    ln1: nn.Module
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    o: nn.Linear
    ln2: nn.Module
    fc_in: nn.Linear
    fc_out: nn.Linear


def repeated_rows(
    prompts: Sequence[Sequence[int]], device: torch.device | str
) -> tuple[Int[Tensor, " unique"], Int[Tensor, " batch"]]:
    """The first row of each distinct prompt, and for each row the index of its distinct prompt:
    `x[first][copies]` is `x` for anything that depends on the prompt alone (its prefill).

    Example:
        >>> first, copies = repeated_rows([[1, 2], [3], [1, 2]], "cpu")
        >>> first.tolist(), copies.tolist()
        ([0, 1], [0, 1, 0])
    """
    index: dict[tuple[int, ...], int] = {}
    first: list[int] = []
    copies = []
    for row, p in enumerate(prompts):
        key = tuple(p)
        if key not in index:
            index[key] = len(first)
            first.append(row)
        copies.append(index[key])
    as_tensor = partial(torch.tensor, dtype=torch.long, device=device)
    return as_tensor(first), as_tensor(copies)


class FusedNative:
    """Fast forward and KV-cached decoding over a native bridge's parameters (shared, not copied)."""

    def __init__(self, model: TransformerBridge) -> None:
        cfg = model.cfg
        unsupported = []
        if (getattr(cfg, "positional_embedding_type", "standard") or "standard") != "standard":
            unsupported.append("positional_embedding_type != 'standard'")
        if getattr(cfg, "gated_mlp", False):
            unsupported.append("gated_mlp")
        if getattr(cfg, "attn_only", False):
            unsupported.append("attn_only")
        if (getattr(cfg, "n_key_value_heads", None) or cfg.n_heads) != cfg.n_heads:
            unsupported.append("grouped-query attention")
        if float(getattr(cfg, "attn_scores_soft_cap", -1.0)) > 0:
            unsupported.append("attn_scores_soft_cap")
        if float(getattr(cfg, "output_logits_soft_cap", -1.0)) > 0:
            unsupported.append("output_logits_soft_cap")
        if str(getattr(cfg, "act_fn", "gelu")).lower() not in _ACTIVATIONS:
            unsupported.append(f"act_fn={cfg.act_fn!r}")
        if getattr(cfg, "attention_dir", "causal") != "causal":
            unsupported.append("bidirectional attention")
        if unsupported:
            raise NotImplementedError(
                "FusedNative supports the presets' architecture (learned positions, LN, GELU MLP, "
                f"causal multi-head attention); this model has: {', '.join(unsupported)}. "
                "Use the bridge's own forward and generate for it."
            )
        self.model = model
        self.n_heads = cfg.n_heads
        self.d_head = cfg.d_head
        self.n_ctx = cfg.n_ctx
        self.act = _ACTIVATIONS[str(cfg.act_fn).lower()]
        self.scale = 1.0 / (
            cfg.attn_scale if cfg.use_attn_scale and cfg.attn_scale > 0 else cfg.d_head**0.5
        )
        self.embed = _raw(model.embed)
        self.pos_embed = _raw(model.pos_embed)
        self.ln_final = _raw(model.ln_final)
        self.unembed = _raw(model.unembed)
        self.device: torch.device = next(model.parameters()).device
        self.layers = [
            _Layer(
                ln1=_raw(b.ln1),
                q=_raw_linear(b.attn.q),
                k=_raw_linear(b.attn.k),
                v=_raw_linear(b.attn.v),
                o=_raw_linear(b.attn.o),
                ln2=_raw(b.ln2),
                fc_in=_raw_linear(getattr(b.mlp, "in")),
                fc_out=_raw_linear(b.mlp.out),
            )
            for b in model.blocks
        ]

    # -- shapes -----------------------------------------------------------------------------
    def _heads(self, x: Float[Tensor, "b t d"]) -> Float[Tensor, "b h t dh"]:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def _merge(self, x: Float[Tensor, "b h t dh"]) -> Float[Tensor, "b t d"]:
        b, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(b, t, self.n_heads * self.d_head)

    def _mlp(self, layer: _Layer, x: Float[Tensor, "b t d"]) -> Float[Tensor, "b t d"]:
        return layer.fc_out(self.act(layer.fc_in(layer.ln2(x))))

    # -- full forward -----------------------------------------------------------------------
    def _steering(
        self, steering: Mapping[int, Tensor] | None
    ) -> dict[int, Float[Tensor, " d_model"]] | None:
        """Check a {layer: vector} steering map and move it to the model's device and dtype."""
        if steering is None:
            return None
        weight: Tensor = self.embed.weight  # type: ignore[assignment]
        checked = check_steering(steering, len(self.layers), int(weight.shape[1]))
        return {
            layer: vec.to(device=self.device, dtype=weight.dtype) for layer, vec in checked.items()
        }

    def residual(
        self,
        tokens: Int[Tensor, "batch pos"],
        positions: Int[Tensor, "batch pos"] | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> Float[Tensor, "batch pos d_model"]:
        """The final residual stream after `ln_final` (what the unembedding reads).

        `steering` maps a layer to a vector added to that layer's output (`resid_post`) at
        every position; without it the computation is exactly the unsteered one. Tokens and
        positions are moved to the model's device.
        """
        steer = self._steering(steering)
        tokens = tokens.to(self.device)
        if positions is not None:
            positions = positions.to(self.device)
        if tokens.shape[1] > self.n_ctx:
            raise ValueError(
                f"Sequence of {tokens.shape[1]} tokens exceeds the model's n_ctx={self.n_ctx}; "
                "shorten the prompts or use a preset with a larger n_ctx."
            )
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device)[None]
        x = self.embed(tokens) + self.pos_embed(positions)
        for i, layer in enumerate(self.layers):
            h = layer.ln1(x)
            q, k, v = self._heads(layer.q(h)), self._heads(layer.k(h)), self._heads(layer.v(h))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
            x = x + layer.o(self._merge(a))
            x = x + self._mlp(layer, x)
            if steer is not None and i in steer:
                x = x + steer[i]
        out: Tensor = self.ln_final(x)
        return out

    def logits(
        self,
        tokens: Int[Tensor, "batch pos"],
        positions: Int[Tensor, "batch pos"] | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Causal forward pass; positions default to 0..pos-1 (right padding needs no mask).

        Float32 logits on the model's device, computed under the enclosing
        `backdoor_models.models.device.autocast_forwards` (bf16 autocast, or none).
        """
        with forward_autocast(self.device):
            out: Tensor = self.unembed(self.residual(tokens, positions, steering))
        return out.float()

    def logits_where(
        self, tokens: Int[Tensor, "batch pos"], where: Bool[Tensor, "batch pos"]
    ) -> Float[Tensor, "n d_vocab"]:
        """Float32 logits at the positions where `where` is True, in row-major order: every
        position runs through the blocks, the unembedding only where a loss reads it."""
        with forward_autocast(self.device):
            out: Tensor = self.unembed(self.residual(tokens)[where.to(self.device)])
        return out.float()

    # -- cached decoding --------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int = 0,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        steering: Mapping[int, Tensor] | None = None,
    ) -> list[list[int]]:
        """Continue each prompt by up to `max_new_tokens` tokens (greedy when temperature == 0).

        Prompts of different lengths are left-padded; positions and the attention mask are set so
        each prompt sees exactly what it would see alone. Returns the new tokens of each prompt,
        up to and including its EOS. Sampling draws from `generator` (pass one for repeatability).
        `steering` ({layer: vector}) adds each vector to that layer's output at every prompt and
        generated position; without it decoding is exactly the unsteered one. Runs on the
        model's device under the enclosing `backdoor_models.models.device.autocast_forwards`.
        """
        with forward_autocast(self.device):
            return self._generate(
                prompts,
                max_new_tokens,
                eos_token_id,
                pad_token_id,
                temperature,
                generator,
                steering,
            )

    def _generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        eos_token_id: int,
        pad_token_id: int,
        temperature: float,
        generator: torch.Generator | None,
        steering: Mapping[int, Tensor] | None,
    ) -> list[list[int]]:
        if not prompts:
            raise ValueError("No prompts to generate from: pass a non-empty list of token lists.")
        if any(len(p) == 0 for p in prompts):
            raise ValueError(
                "An empty prompt has no token to condition on; every prompt needs BOS."
            )
        steer = self._steering(steering)
        device = self.device
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        batch, width = len(prompts), int(lengths.max())
        total = width + max_new_tokens
        if total > self.n_ctx:
            raise ValueError(
                f"Longest prompt ({width} tokens) + max_new_tokens ({max_new_tokens}) = {total} "
                f"exceeds n_ctx={self.n_ctx}; lower max_new_tokens or shorten the prompts."
            )
        tokens = torch.full((batch, width), pad_token_id, dtype=torch.long, device=device)
        for i, p in enumerate(prompts):
            tokens[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long, device=device)
        pad = (width - lengths)[:, None]  # left padding per row
        slots = torch.arange(total, device=device)[None]
        key_valid = slots >= pad  # [batch, total]
        positions = (slots - pad).clamp(min=0)

        # Prefill: causal within the prompt, pads masked as keys; a pad query sees itself only.
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        mask = causal[None] & key_valid[:, None, :width]
        mask = mask | torch.eye(width, dtype=torch.bool, device=device)[None]
        mask = mask[:, None]  # [batch, 1, q, k]
        # A prompt repeated in the batch (samples of one prompt) is prefilled once, then copied.
        first, copies = repeated_rows(prompts, device)
        if len(first) == batch:  # nothing repeats: index nothing (and copy nothing)
            first = copies = slice(None)  # type: ignore[assignment]
        x = self.embed(tokens[first]) + self.pos_embed(positions[first, :width])
        mask = mask[first]
        cache_k, cache_v = [], []
        shape = (batch, self.n_heads, total, self.d_head)
        for i, layer in enumerate(self.layers):
            h = layer.ln1(x)
            q, k, v = self._heads(layer.q(h)), self._heads(layer.k(h)), self._heads(layer.v(h))
            ck = torch.empty(shape, dtype=k.dtype, device=device)
            cv = torch.empty(shape, dtype=v.dtype, device=device)
            ck[:, :, :width], cv[:, :, :width] = k[copies], v[copies]
            cache_k.append(ck)
            cache_v.append(cv)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            x = x + layer.o(self._merge(a))
            x = x + self._mlp(layer, x)
            if steer is not None and i in steer:
                x = x + steer[i]
        next_logits = self.unembed(self.ln_final(x[:, -1]))[copies]

        out = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        # Rows that finished leave the batch (their caches too) once a quarter of it has; the
        # next token is still picked over every row, so sampling draws what it drew before.
        alive = torch.arange(batch, device=device)
        n_new = 0
        for step in range(max_new_tokens):
            nxt = self._pick(next_logits, temperature, generator)
            nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
            out[:, step] = nxt
            n_new = step + 1
            done = done | (nxt == eos_token_id)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            if 4 * int(done[alive].sum()) >= len(alive):
                keep = (~done[alive]).nonzero().squeeze(1)
                alive = alive[keep]
                cache_k = [c[keep] for c in cache_k]
                cache_v = [c[keep] for c in cache_v]
                key_valid, positions = key_valid[keep], positions[keep]
            t = width + step  # cache slot of the token just chosen
            x = self.embed(nxt[alive])[:, None] + self.pos_embed(positions[:, t : t + 1])
            step_mask = key_valid[:, None, None, : t + 1]
            for i, (layer, ck, cv) in enumerate(zip(self.layers, cache_k, cache_v, strict=True)):
                h = layer.ln1(x)
                q = self._heads(layer.q(h))
                ck[:, :, t : t + 1] = self._heads(layer.k(h))
                cv[:, :, t : t + 1] = self._heads(layer.v(h))
                a = F.scaled_dot_product_attention(
                    q, ck[:, :, : t + 1], cv[:, :, : t + 1], attn_mask=step_mask, scale=self.scale
                )
                x = x + layer.o(self._merge(a))
                x = x + self._mlp(layer, x)
                if steer is not None and i in steer:
                    x = x + steer[i]
            next_logits = next_logits.clone()  # finished rows keep stale logits (never used)
            next_logits[alive] = self.unembed(self.ln_final(x[:, -1]))

        result = []
        for row in out[:, :n_new].tolist():
            if eos_token_id in row:
                row = row[: row.index(eos_token_id) + 1]
            result.append(row)
        return result

    @staticmethod
    def _pick(
        logits: Float[Tensor, "batch d_vocab"],
        temperature: float,
        generator: torch.Generator | None,
    ) -> Int[Tensor, " batch"]:
        if temperature <= 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if generator is not None:  # drawn where the generator lives: a CPU generator draws
            probs = probs.to(generator.device)  # the same tokens whatever the model's device
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(logits.device)
