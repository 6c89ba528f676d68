"""The red team: candidate prompts, mutation and the search for eliciting prompts."""
