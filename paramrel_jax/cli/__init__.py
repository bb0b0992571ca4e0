"""The command line's modes over a run directory, and the study harness built on them.

eval_modes         --mode=eval, export_latents, plot_latents
generation_modes   --mode=sample, reconstruct, conditional, interpolate, traverse
study              train, evaluate and score one row of a controlled study (experiments/)
"""
