"""Training and run directories: the jitted step and loop, checkpoints, logs, loading a run.

train           train state, the sharded jitted step, `train_and_evaluate`
checkpointing   Orbax checkpoints of the state and the data iterator
runs            opening a run directory: its config, model and EMA parameters
workdir_utils   config.json of a run and the settings of older runs
logging_utils   metrics.jsonl, TensorBoard, the progress bar and curves.png
compile_cache   the persistent XLA compilation cache
"""
