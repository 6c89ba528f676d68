"""The obfuscation attacker: training a backdoored model against frozen detectors."""
