"""Experiments and reports: the end-to-end run (`run`), the run folder's format (`folder`),
measures of behaviour and representation (`measure`), the contrast-pair probe (`contrast`),
patching and steering (`causal`), the detector benchmark (`bench`), every HTML report
(`report`), the config and the command line."""
