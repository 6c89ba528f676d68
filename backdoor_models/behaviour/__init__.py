"""What a backdoor is: triggers, scratchpads, safety data, and the judges of replies."""
