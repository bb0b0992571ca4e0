"""The command line's modes over a run directory.

eval_modes         --mode=eval, export_latents, plot_latents
generation_modes   --mode=sample, reconstruct, conditional, interpolate, traverse
"""
