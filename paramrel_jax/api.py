"""The Python API: a trained run directory as an object that takes and gives uint8 images.

  import paramrel_jax
  model = paramrel_jax.load("runs/default")     # config.json + the latest checkpoint (EMA)
  z = model.encode(images)                      # uint8 (N, H, W, C) -> float32 (N, L)
  again = model.reconstruct(images, seed=0)     # reverse sampling (Eq. 5) and decoding
  x = model.sample(16, seed=0)                  # uint8 (16, H, W, C)

Images are uint8 (N, H, W, C) in 0..255 at the run's size, as in the project's .npz data. Each
method applies the run's own preprocessing (`paramrel_jax.data.transforms`: binarisation for
discrete flows, scaling to [-1, 1] and quantisation to the bins otherwise) and turns the model's
output back into uint8 (`paramrel_jax.viz.images.to_uint8`). Every method is a deterministic
function of its `seed`. A baseline run (`model.kind` other than 'paramrel') encodes, reconstructs
and, if it has a prior, samples; what it cannot do raises a ValueError naming its kind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from paramrel_jax.config import configuration
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.data import transforms
from paramrel_jax.evaluation import latent_plots, latents
from paramrel_jax.methods import interface
from paramrel_jax.methods.paramrel import interpolation, reverse_sampling
from paramrel_jax.training import inference, workdir_utils
from paramrel_jax.viz.images import to_uint8


@functools.partial(jax.jit, static_argnums=0)
def _reconstruct(model: interface.Model, params, key: jax.Array, x: jax.Array) -> jax.Array:
  """`model.reconstruct`, compiled once per model and batch shape."""
  return model.reconstruct(params, key, x)


def load(workdir: str, *, step: int | None = None) -> LoadedModel:
  """The run in `workdir`: its saved config.json and the EMA weights of a checkpoint.

  Args:
    workdir: a run directory written by `python -m paramrel_jax.main --mode=train`.
    step: the checkpoint step; None for the latest.

  Raises:
    ValueError: workdir holds no config.json, or the config does not resolve.
    checkpointing.CheckpointError (a ValueError): no checkpoint, or one that does not fit.
  """
  path = os.path.join(workdir, workdir_utils.CONFIG_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"{workdir} holds no run: there is no {workdir_utils.CONFIG_FILE} (train "
                     f"one with python -m paramrel_jax.main --config=... --workdir={workdir}).")
  with open(path) as f:
    saved = json.load(f)
  for dotted, value in workdir_utils.saved_run_settings(workdir).items():
    section, key = dotted.split(".")  # keys a run written before they existed lacks
    saved[section][key] = value
  config = configuration.resolve(ml_collections.ConfigDict(saved))
  return LoadedModel(config, inference.load(config, workdir, step=step))


class LoadedModel:
  """A trained ParamReL or baseline with uint8 images in and out (module docstring)."""

  def __init__(self, config: ExperimentConfig, trained: inference.TrainedModel):
    self.config = config
    self.trained = trained

  @property
  def kind(self) -> str:
    """`model.kind` of the run: 'paramrel' or a baseline."""
    return self.config.model_kind

  @property
  def step(self) -> int:
    """The training step of the loaded checkpoint."""
    return self.trained.step

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of the images the model takes and gives."""
    return self.trained.info.image_shape

  @property
  def latent_dim(self) -> int:
    """L, the size of a code."""
    return self.config.network.latent_dim

  def _model(self, steps: int | None) -> interface.Model:
    """The run's model, rebuilt with `steps` sampling steps when given (ParamReL's n)."""
    if steps is None:
      return self.trained.model
    interface.require(self.trained.model, interface.FLOW, "steps (the n of an n-step flow)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
      raise ValueError(f"steps must be >= 1 (an integer), got {steps!r}.")
    return dataclasses.replace(self.trained.model, sample_steps=steps)

  def _needs_latents(self, what: str, *, codes: bool = False) -> None:
    if codes:
      interface.require(self.trained.model, interface.FLOW, what)
    if self.latent_dim == 0:
      raise ValueError(f"{what} needs a self-encoder, but the run has model.latent_dim = 0.")

  def _data(self, x, name: str, *, seed: int, batch: bool = True) -> np.ndarray:
    """uint8 images -> model inputs by the run's preprocessing; ValueError for a bad array."""
    x = np.asarray(x)
    expected = ("N >= 1", *self.image_shape) if batch else self.image_shape
    rank = len(expected)
    if (x.dtype != np.uint8 or x.ndim != rank or x.shape[rank - 3:] != self.image_shape
        or (batch and x.shape[0] == 0)):
      raise ValueError(f"{name} must be uint8 of shape ({', '.join(map(str, expected))}), "
                       f"got {x.dtype} of shape {x.shape}.")
    cfg = self.config.data
    rng = np.random.default_rng(seed) if cfg.binarize == "bernoulli" else None
    return transforms.preprocess_images(x, binarize=cfg.binarize, threshold=cfg.threshold,
                                        num_bins=cfg.num_bins, rng=rng)

  def _pixels(self, x) -> np.ndarray:
    flow = self.config.flow
    return to_uint8(np.asarray(x), flow.data_type, num_classes=getattr(flow, "num_classes", 2))

  def _batches(self, x: np.ndarray):
    """(offset, batch) of `eval.batch_size` inputs each (one compile per batch shape)."""
    for start in range(0, len(x), self.config.eval.batch_size):
      yield start, jnp.asarray(x[start:start + self.config.eval.batch_size])

  def encode(self, images, t: float = 1.0, *, seed: int = 0) -> np.ndarray:
    """The codes of uint8 images (N, H, W, C): float32 (N, L).

    The model's posterior mean (`interface.Model.encode`), as `--mode=export_latents` gives it
    (with the same seed and batches, the same numbers). ParamReL: the mean of q(z_t | e, t) at
    flow time t; a baseline has no flow time (t must be 1).
    """
    self._needs_latents("encode")
    if not 0.0 <= t <= 1.0:
      raise ValueError(f"t must lie in [0, 1], got {t}.")
    x = self._data(images, "images", seed=seed)
    model, params, key = self.trained.model, self.trained.params, jax.random.key(seed)
    size = self.config.eval.batch_size  # keys by batch index, as --mode=export_latents
    return np.concatenate([
      np.asarray(latents.encode(model, params, jax.random.fold_in(key, start // size), batch,
                                t=float(t)))
      for start, batch in self._batches(x)])

  def sample(self, n: int, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """n generated images, uint8 (n, H, W, C).

    The model's sampler (`interface.Model.sample`). ParamReL: `steps`-step generation (Eq. 4;
    default sampling.num_steps), z from sampling.z_source; a VAE or InfoDiffusion: its own
    sampler; an AE or DiffAE has no prior and raises a ValueError.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
      raise ValueError(f"n must be an integer >= 1, got {n!r}.")
    model = self._model(steps)
    try:
      x, _ = model.sample(self.trained.params, jax.random.key(seed), n)
    except ValueError as e:
      raise ValueError(f"model kind {self.kind!r} cannot sample: {e}") from e
    return self._pixels(x)

  def _codes(self, x: jax.Array, key: jax.Array, steps: int | None) -> reverse_sampling.Codes:
    model = self._model(steps)
    return reverse_sampling.encode(key, model.flow, model.net, self.trained.params, x,
                                   n_steps=model.sample_steps)

  def _decode(self, codes: reverse_sampling.Codes) -> np.ndarray:
    model = self.trained.model
    return self._pixels(reverse_sampling.decode(model.flow, model.net, self.trained.params,
                                                codes).x)

  def reconstruct(self, images, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """uint8 images (N, H, W, C) encoded and decoded again, uint8 (N, H, W, C).

    The model's `reconstruct`. ParamReL: reverse sampling (Eq. 5) into z and `steps` subcodes,
    then their replay, which retraces each input's own Bayesian flow exactly; the image is the
    network's estimate at its end (`--mode=reconstruct`'s 'reconstruction'). A baseline: its own
    reconstruction.
    """
    self._needs_latents("reconstruct")
    model = self._model(steps)
    x = self._data(images, "images", seed=seed)
    key = jax.random.key(seed)
    # keys by batch offset, as --mode=reconstruct: the same images give the same output
    return np.concatenate([self._pixels(_reconstruct(model, self.trained.params,
                                                     jax.random.fold_in(key, start), batch))
                           for start, batch in self._batches(x)])

  def _single_codes(self, image, name: str, seed: int, steps: int | None):
    """Codes of one uint8 image (H, W, C), encoded as `reconstruct` encodes a batch of one."""
    x = jnp.asarray(self._data(image, name, seed=seed, batch=False)[None])
    return self._codes(x, jax.random.fold_in(jax.random.key(seed), 0), steps)

  def interpolate(self, a, b, num: int = 8, *, seed: int = 0,
                  steps: int | None = None) -> np.ndarray:
    """`num` images from a to b (each uint8 (H, W, C)): uint8 (num, H, W, C).

    Both z and the subcodes move (`sampling.interpolation_method`, App. E); the first and the
    last image are `reconstruct` of a and of b. Needs a Bayesian flow (ParamReL).
    """
    self._needs_latents("interpolate", codes=True)
    codes_a = self._single_codes(a, "a", seed, steps)
    codes_b = self._single_codes(b, "b", seed, steps)
    path = interpolation.interpolate_codes(codes_a, codes_b, num,
                                           self.config.sampling.interpolation_method)
    return self._decode(path)

  def traverse(self, image, dim: int, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """Latent dimension `dim` of one uint8 image (H, W, C) set to sampling.traverse_steps values
    over [-sampling.traverse_range, +sampling.traverse_range], decoded with the image's own
    subcodes: uint8 (traverse_steps, H, W, C). Needs a Bayesian flow (ParamReL)."""
    self._needs_latents("traverse", codes=True)
    codes = self._single_codes(image, "image", seed, steps)
    cfg = self.config.sampling
    zs = interpolation.traverse(codes.z[0], dims=[dim], num_steps=cfg.traverse_steps,
                                low=-cfg.traverse_range, high=cfg.traverse_range)
    return self._decode(codes._replace(z=zs[0]))

  def plot_latents(self, images, directory: str, *, labels=None, name: str = "codes",
                   seed: int = 0) -> dict[str, str]:
    """PCA and t-SNE pictures of the codes of `images`, as `--mode=plot_latents`.

    Args:
      images: uint8 (N, H, W, C), N >= 3.
      directory: where directory/<name>_pca.png and <name>_tsne.png are written.
      labels: None, int (N,) class labels, or int (N, F) factors (named by the run's dataset
        when F matches), one panel each.
      name: file name prefix.
      seed: seed of the codes, the subsample and t-SNE.

    Returns:
      {method: path of its PNG}.
    """
    arrays = {"z": self.encode(images, seed=seed)}
    if labels is not None:
      labels = np.asarray(labels)
      arrays["label" if labels.ndim == 1 else "factors"] = labels
    return latent_plots.save_projections(directory, name, arrays,
                                         factor_names=self.trained.info.factor_names, seed=seed)
