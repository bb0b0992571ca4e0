"""The Python API: a trained run directory as an object that takes and gives uint8 images.

  import paramrel_jax
  model = paramrel_jax.load("runs/default")     # config.json + the latest checkpoint (EMA)
  images = model.eval_data(64)                  # the run's evaluation split, uint8
  z = model.encode(images)                      # uint8 (N, H, W, C) -> float32 (N, L)
  again = model.reconstruct(images, seed=0)     # reverse sampling (Eq. 5) and decoding
  x = model.sample(16, seed=0)                  # uint8 (16, H, W, C)

Images are uint8 (N, H, W, C) in 0..255 at the run's size, as in the project's .npz data. Each
method applies the run's own preprocessing (`paramrel_jax.data.transforms`: binarisation for
discrete flows, scaling to [-1, 1] and quantisation to the bins otherwise) and turns the model's
output back into uint8 (`paramrel_jax.viz.images.to_uint8`). Every method is a deterministic
function of its `seed`. A baseline run (`model.kind` other than 'paramrel') encodes, reconstructs
and, if it has a prior, samples; what it cannot do raises a ValueError naming its kind.

A table run (`configs/tabular.py`) loads as a `TableModel`, which takes and gives pandas
DataFrames in the table's own units and category names instead of images:

  model = paramrel_jax.load("runs/penguins")
  z = model.encode(table)                       # DataFrame with the run's columns -> (N, L)
  rows = model.sample(100, seed=0)              # DataFrame of 100 generated records
  filled = model.impute(table, seed=0)          # its missing cells filled given the others

Beneath them, the model-space methods (`generate`, `codes`, `decode`, `*_arrays`) take and give
the model's own arrays, exactly; the CLI's generation modes (`cli.generation_modes`) are these
methods with the config's seed.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from paramrel_jax.bfn import checks
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.data import sources, transforms
from paramrel_jax.evaluation import latent_plots, latents
from paramrel_jax.methods import interface, registry
from paramrel_jax.methods.paramrel import interpolation, reverse_sampling, sampling
from paramrel_jax.methods.paramrel import likelihood as paramrel_likelihood
from paramrel_jax.training import logging_utils, runs
from paramrel_jax.viz.images import to_uint8


@functools.partial(jax.jit, static_argnums=0)
def _reconstruct(model: interface.Model, params, key: jax.Array, x: jax.Array) -> jax.Array:
  """`model.reconstruct`, compiled once per model and batch shape."""
  return model.reconstruct(params, key, x)


@functools.partial(jax.jit, static_argnums=0)
def _latent_gaps(model: interface.Model, params, key: jax.Array, x: jax.Array, times: jax.Array):
  """`model.latent_gap_by_time`, compiled once per model, batch shape and number of times."""
  return model.latent_gap_by_time(params, key, x, times)


@functools.partial(jax.jit, static_argnums=0)
def _content_masks(model: interface.Model, params, key: jax.Array, x: jax.Array) -> jax.Array:
  """`model.content_masks` of a batch's codes (its encoder mean at t = 1), compiled once per
  model and batch shape."""
  return model.content_masks(params, model.encode(params, key, x, 1.0))


def load(workdir: str, *, step: int | None = None) -> LoadedModel:
  """The run in `workdir`: its saved config.json and the EMA weights of a checkpoint.

  Args:
    workdir: a run directory written by `python -m paramrel_jax.main --mode=train`.
    step: the checkpoint step; None for the latest.

  Raises:
    ValueError: workdir holds no config.json, or the config does not resolve.
    checkpointing.CheckpointError (a ValueError): no checkpoint, or one that does not fit.
  """
  return model_for(*runs.open_run(workdir, step=step))


def model_for(config: ExperimentConfig, trained: runs.TrainedModel) -> LoadedModel:
  """The API object of a restored run: a `TableModel` for tables, else a `LoadedModel`."""
  cls = TableModel if config.data.schema is not None else LoadedModel
  return cls(config, trained)


class LoadedModel:
  """A trained ParamReL or baseline with uint8 images in and out (module docstring)."""

  def __init__(self, config: ExperimentConfig, trained: runs.TrainedModel):
    self.config = config
    self.trained = trained
    self._prior: latents.FittedPrior | None = None

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

  def with_sampling(self, **changes) -> LoadedModel:
    """The same trained run with other `sampling` settings, e.g. `with_sampling(z_prior=
    'standard')`; the model is rebuilt with them (num_steps, z_source), and the fitted prior is
    kept when the settings it depends on are unchanged.

    Raises:
      ValueError: a key `sampling` does not have, or a bad value.
    """
    names = {field.name for field in dataclasses.fields(self.config.sampling)}
    unknown = sorted(set(changes) - names)
    if unknown:
      raise ValueError(f"unknown sampling setting(s) {unknown}; known: {sorted(names)}.")
    sampling = dataclasses.replace(self.config.sampling, **changes)
    config = dataclasses.replace(self.config, sampling=sampling)
    model = registry.build_model(config, self.image_shape[-1])
    loaded = type(self)(config, dataclasses.replace(self.trained, model=model))
    if all(
      getattr(sampling, name) == getattr(self.config.sampling, name) for name in latents.PRIOR_KEYS
    ):
      loaded._prior = self._prior
    return loaded

  def _model(self, steps: int | None) -> interface.Model:
    """The run's model, rebuilt with `steps` sampling steps when given (ParamReL's n)."""
    if steps is None:
      return self.trained.model
    interface.require(self.trained.model, interface.FLOW, "steps (the n of an n-step flow)")
    checks.check_static_int("steps", steps, 1)
    return dataclasses.replace(self.trained.model, sample_steps=steps)

  def _needs_latents(self, what: str, *, codes: bool = False) -> None:
    if codes:
      interface.require(self.trained.model, interface.FLOW, what)
    if self.latent_dim == 0:
      raise ValueError(f"{what} needs a self-encoder, but the run has model.latent_dim = 0.")

  def _batches(self, x: np.ndarray, progress: str | None = None):
    """(offset, batch) of `eval.batch_size` inputs each (one compile per batch shape).

    With `progress`, a bar of that name over the images (process 0, more than one batch); the
    caller finishes each batch before asking for the next, so the bar counts finished images.
    """
    size = self.config.eval.batch_size
    num = len(jax.tree.leaves(x)[0])  # images (N, ...), or a record's (N, 1) columns
    enabled = progress is not None and num > size and jax.process_index() == 0
    with logging_utils.image_bar(num, progress, enabled=enabled) as bar:
      for start in range(0, num, size):
        rows = slice(start, start + size)
        yield start, jax.tree.map(lambda a, rows=rows: jnp.asarray(a[rows]), x)
        bar.update(min(size, num - start))

  def eval_data(self, num: int | None = None) -> np.ndarray:
    """The first `num` (None: all) examples of the run's evaluation split (`data.eval_split`),
    as the methods below take them: uint8 images (N, H, W, C).

    Raises:
      ValueError: num < 1, or data the run's config can no longer open (naming it).
    """
    split, count = self._eval_split(num)
    return np.stack([split[i]["image"] for i in range(count)])

  def _eval_split(
    self, num: int | None
  ) -> tuple[sources.ArraySource | sources.TfdsSource | sources.TableSource, int]:
    """(the evaluation split, how many of its examples `eval_data(num)` returns)."""
    if num is not None:
      checks.check_static_int("num", num, 1)
    split = sources.open_split(self.config.data, self.config.data.eval_split)
    return split, len(split) if num is None else min(num, len(split))

  # Model space: the model's own arrays (int32 {0, 1} for a discrete flow, float32 in [-1, 1]
  # on the bins otherwise), which the CLI modes write to their .npz files. The uint8 methods
  # further down are these between `to_model` and `to_images`.

  def to_model(self, images, *, seed: int = 0, name: str = "images") -> np.ndarray:
    """uint8 images (N, H, W, C) -> model inputs, by the run's preprocessing.

    Raises:
      ValueError: not uint8 of shape (N >= 1, H, W, C) at the run's image shape.
    """
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != self.image_shape or x.shape[0] == 0:
      raise ValueError(
        f"{name} must be uint8 of shape (N >= 1, "
        f"{', '.join(map(str, self.image_shape))}), got {x.dtype} of shape "
        f"{x.shape}."
      )
    cfg = self.config.data
    rng = np.random.default_rng(seed) if cfg.binarize == "bernoulli" else None
    return transforms.preprocess_images(
      x, binarize=cfg.binarize, threshold=cfg.threshold, num_bins=cfg.num_bins, rng=rng
    )

  def to_images(self, x) -> np.ndarray:
    """Model-space arrays (..., H, W, C) -> uint8 images of the same shape."""
    x = np.asarray(x)
    return to_uint8(x.reshape(-1, *x.shape[-3:]), self.config.flow).reshape(x.shape)

  def _one(self, image, name: str, seed: int) -> np.ndarray:
    """One uint8 image (H, W, C) as a model-space batch of one."""
    image = np.asarray(image)
    if image.shape != self.image_shape or image.dtype != np.uint8:
      raise ValueError(
        f"{name} must be uint8 of shape "
        f"({', '.join(map(str, self.image_shape))}), got {image.dtype} of shape "
        f"{image.shape}."
      )
    return self.to_model(image[None], seed=seed, name=name)

  def generate(
    self, n: int, *, seed: int = 0, steps: int | None = None
  ) -> tuple[np.ndarray, np.ndarray]:
    """(x, z): n samples of the model's sampler in model space and their codes (n, L).

    The model's `sample` with key `seed` (ParamReL: Eq. 4 in `steps` steps, default
    sampling.num_steps, z from sampling.z_source; a VAE or InfoDiffusion: its own sampler).
    z is drawn from `latent_prior()`: by default the Gaussian fitted to training codes.

    Raises:
      ValueError: n < 1, or a model without a prior (AE, DiffAE), naming its kind.
    """
    checks.check_static_int("n", n, 1)
    model, key, z = self._model(steps), jax.random.key(seed), None
    prior = self.latent_prior()
    if prior is not None:  # ParamReL's own z ~ N(0, I) is drawn with fold_in(key, 0) too
      z = latents.draw_prior(prior, jax.random.fold_in(key, 0), n)
    try:
      x, z = model.sample(self.trained.params, key, n, z=z)
    except ValueError as e:
      raise ValueError(f"model kind {self.kind!r} cannot sample: {e}") from e
    return jax.tree.map(np.asarray, x), np.asarray(z)

  def latent_prior(self) -> latents.FittedPrior | None:
    """The p(z) that `generate` draws from (`latents.latent_prior`): None for N(0, I), else the
    Gaussian fitted to the codes (or, with a progressive encoder, the code paths) of the first
    sampling.prior_examples training images; computed once, and kept in the run directory.
    """
    if self._prior is None:
      trained = self.trained
      path = (
        None
        if trained.workdir is None
        else latents.prior_path(trained.workdir, trained.step, self.config)
      )
      self._prior = latents.latent_prior(trained.model, trained.params, self.config, path=path)
    return self._prior

  def codes(
    self, x: np.ndarray, *, seed: int = 0, steps: int | None = None
  ) -> reverse_sampling.Codes:
    """Reverse sampling (Eq. 5) of model-space x (N, H, W, C) into z and `steps` subcodes.

    Batches of eval.batch_size, keyed by their offset as `reconstruct_arrays` keys them, so
    decoding these codes gives its reconstruction. Needs a Bayesian flow (ParamReL).
    """
    self._needs_latents("codes", codes=True)
    model, key = self._model(steps), jax.random.key(seed)
    parts = [
      jax.block_until_ready(model.codes(self.trained.params, jax.random.fold_in(key, start), batch))
      for start, batch in self._batches(x, "reverse sampling")
    ]
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *parts)

  def decode(self, codes: reverse_sampling.Codes) -> reverse_sampling.Reconstruction:
    """The replay of codes (Eq. 5) by the run's model (`reverse_sampling.decode`)."""
    model = interface.require(self.trained.model, interface.FLOW, "decode")
    return model.decode_codes(self.trained.params, codes)

  def reconstruct_arrays(
    self, x: np.ndarray, *, seed: int = 0, steps: int | None = None
  ) -> dict[str, np.ndarray]:
    """Model-space x (N, H, W, C) encoded and decoded again.

    Returns:
      {'reconstruction': (N, H, W, C)}: the model's `reconstruct`, in batches keyed by their
      offset. ParamReL adds 'reconstruction_flow', the flow's own end point, and the per-example
      `reverse_sampling.reconstruction_stats`, each (N,).
    """
    self._needs_latents("reconstruct")
    model, key = self._model(steps), jax.random.key(seed)
    if not interface.has(model, interface.FLOW):
      return {
        "reconstruction": np.concatenate(
          [
            np.asarray(
              _reconstruct(model, self.trained.params, jax.random.fold_in(key, start), batch)
            )
            for start, batch in self._batches(x, "reconstructing")
          ]
        )
      }
    parts = []
    for start, batch in self._batches(x, "reconstructing"):
      codes = model.codes(self.trained.params, jax.random.fold_in(key, start), batch)
      rec = model.decode_codes(self.trained.params, codes)
      parts.append(
        jax.device_get(
          {
            "reconstruction": rec.x,
            "reconstruction_flow": rec.x_flow,
            **model.reconstruction_stats(batch, rec),
          }
        )
      )
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts)

  def likelihood_arrays(
    self, x: np.ndarray, *, seed: int = 0, loss_steps: int | None = None
  ) -> dict[str, np.ndarray]:
    """Per-example bound terms of model-space x (N, H, W, C), nats per example, each (N,).

    One Monte-Carlo draw per example of `methods.paramrel.likelihood.likelihood_terms` (times,
    flows, z, sender samples; batches keyed by their offset): 'bfn', 'reconstruction', 'test_loss',
    'rate' (against N(0, I)) and 'neg_elbo', and where `generate` draws z from the fitted prior,
    'rate_fitted' and 'neg_elbo_fitted' against it. `loss_steps`: n of the n-step loss, 0 for
    continuous time, default eval.loss_steps. Average over seeds for a lower-variance estimate
    (--mode=eval averages over eval.n_repeats passes).

    Raises:
      ValueError: not a Bayesian flow (a baseline has no BFN likelihood), loss_steps < 0.
    """
    model = interface.require(self.trained.model, interface.FLOW, "likelihood")
    loss_steps = self.config.eval.loss_steps if loss_steps is None else loss_steps
    if isinstance(loss_steps, bool) or not isinstance(loss_steps, int) or loss_steps < 0:
      raise ValueError(f"loss_steps must be an integer >= 0, got {loss_steps!r}.")
    prior = self.latent_prior()
    settings = {
      "loss_steps": loss_steps,
      "sample_z": self.config.objective.posterior == "gaussian",
      "prior": (
        None
        if prior is None
        else paramrel_likelihood.prior_arrays(prior.mean, prior.covariance(), self.latent_dim)
      ),
    }
    key = jax.random.key(seed)
    parts = [
      jax.device_get(
        model.likelihood_terms(
          self.trained.params, jax.random.fold_in(key, start), batch, **settings
        )
      )
      for start, batch in self._batches(x)
    ]
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts)

  def latent_gap_arrays(self, x: np.ndarray, times, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Where along the flow the output network reads z, for model-space x (N, H, W, C), N >= 2.

    The BFN term L^inf (nats per example) at each of `times` (T,) in [0, 1], the output network
    given theta_t and x's own code, another example's (the batch rolled by one), or z = 0:
    {'own', 'shuffled', 'zero'}, each (T, N) (`methods.paramrel.objective.latent_gap_by_time`).
    One theta_t per example and time; batches keyed by their offset.

    Raises:
      ValueError: not a Bayesian flow, no latents, times outside [0, 1], a batch of one example.
    """
    model = interface.require(self.trained.model, interface.FLOW, "latent_gap_arrays")
    self._needs_latents("latent_gap_arrays")
    times = np.asarray(times, np.float32)
    if times.ndim != 1 or times.size == 0 or times.min() < 0 or times.max() > 1:
      raise ValueError(f"times must be a non-empty 1-D array in [0, 1], got {times!r}.")
    size, num = self.config.eval.batch_size, len(jax.tree.leaves(x)[0])  # as `_batches` counts
    if num < 2 or num % size == 1:
      raise ValueError(
        f"latent_gap_arrays swaps codes within a batch of eval.batch_size = {size}: every batch "
        f"needs 2 or more examples, got N = {num}."
      )
    key = jax.random.key(seed)
    parts = [
      jax.device_get(
        _latent_gaps(model, self.trained.params, jax.random.fold_in(key, start), batch, times)
      )
      for start, batch in self._batches(x)
    ]
    return jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1), *parts)

  def time_varying_arrays(
    self, x: np.ndarray, times, *, seed: int = 0, steps: int | None = None
  ) -> np.ndarray:
    """Sec. 5.2.2: x (N, H, W, C) regenerated from its code at each time: (T, N, H, W, C).

    Needs a Bayesian flow and the progressive encoder, whose code changes with t.
    """
    self._needs_latents("time-varying reconstruction", codes=True)
    model = self._model(steps)
    return np.asarray(
      model.time_varying_reconstruction(
        self.trained.params,
        jax.random.key(seed),
        jnp.asarray(x),
        jnp.asarray(times, jnp.float32),
      )
    )

  def conditional_arrays(
    self, x: np.ndarray, num_variations: int, *, seed: int = 0, steps: int | None = None
  ) -> np.ndarray:
    """Sec. 5.2.1: `num_variations` samples given each input's code, fresh subcodes:
    (N, V, H, W, C). Needs a Bayesian flow (ParamReL)."""
    self._needs_latents("conditional generation", codes=True)
    model = self._model(steps)
    x = jnp.asarray(x)
    samples = model.conditional_sample(self.trained.params, jax.random.key(seed), x, num_variations)
    return np.asarray(samples).reshape(len(x), num_variations, *x.shape[1:])

  def interpolate_arrays(
    self, a: np.ndarray, b: np.ndarray, num: int, *, seed: int = 0, steps: int | None = None
  ) -> np.ndarray:
    """App. E: `num` points from each a[k] to b[k] (both (P, H, W, C)): (P, num, H, W, C).

    z and the subcodes both move (`sampling.interpolation_method`); a and b are each encoded as
    `codes` encodes them, so the ends are their reconstructions. Needs a Bayesian flow.
    """
    self._needs_latents("interpolate", codes=True)
    if a.shape != b.shape:
      raise ValueError(f"a and b must have one shape, got {a.shape} and {b.shape}.")
    path = interpolation.interpolate_codes(
      self.codes(a, seed=seed, steps=steps),
      self.codes(b, seed=seed, steps=steps),
      num,
      self.config.sampling.interpolation_method,
    )
    return np.asarray(self.decode(path).x).reshape(len(a), num, *a.shape[1:])

  def traverse_arrays(
    self, x: np.ndarray, dims=None, *, seed: int = 0, steps: int | None = None
  ) -> tuple[np.ndarray, np.ndarray]:
    """Sec. 5.2.4: each of `dims` (default: all) of the code of x (1, H, W, C) set to
    sampling.traverse_steps values over [-sampling.traverse_range, +sampling.traverse_range],
    decoded with x's own subcodes.

    Returns:
      (z (D, M, L), images (D, M, H, W, C)) for D dims and M values. Needs a Bayesian flow.
    """
    self._needs_latents("traverse", codes=True)
    if len(x) != 1:
      raise ValueError(f"traverse takes one input, got {len(x)}.")
    codes, cfg = self.codes(x, seed=seed, steps=steps), self.config.sampling
    zs = interpolation.traverse(
      codes.z[0],
      dims=dims,
      num_steps=cfg.traverse_steps,
      low=-cfg.traverse_range,
      high=cfg.traverse_range,
    )
    num_dims, num_values = zs.shape[:2]
    path = codes._replace(z=zs.reshape(num_dims * num_values, -1))
    return (
      np.asarray(zs),
      np.asarray(self.decode(path).x).reshape(num_dims, num_values, *x.shape[1:]),
    )

  # uint8 images in and out.

  def encode(self, images, t: float = 1.0, *, seed: int = 0) -> np.ndarray:
    """The codes of uint8 images (N, H, W, C): float32 (N, L).

    The model's posterior mean (`interface.Model.encode`), as `--mode=export_latents` gives it
    (with the same seed and batches, the same numbers). ParamReL: the mean of q(z_t | e, t) at
    flow time t; a baseline has no flow time (t must be 1).
    """
    self._needs_latents("encode")
    if not 0.0 <= t <= 1.0:
      raise ValueError(f"t must lie in [0, 1], got {t}.")
    x = self.to_model(images, seed=seed)
    model, params, key = self.trained.model, self.trained.params, jax.random.key(seed)
    size = self.config.eval.batch_size  # keys by batch index, as --mode=export_latents
    return np.concatenate(
      [
        np.asarray(
          latents.encode(model, params, jax.random.fold_in(key, start // size), batch, t=float(t))
        )
        for start, batch in self._batches(x)
      ]
    )

  def content_masks(self, images, *, seed: int = 0) -> np.ndarray:
    """Where each token of the codes of uint8 images (N, H, W, C) draws in the output network:
    float32 (N, K, H, W) masks that sum to 1 over the K = L / latent_group_size tokens.

    Needs a ParamReL run with model.conditioning='content_mask' (`layers.ContentMaskMap`); the
    codes are `encode`'s (t = 1, the same seed).
    """
    self._needs_latents("content_masks", codes=True)
    x = self.to_model(images, seed=seed)
    model, params, key = self.trained.model, self.trained.params, jax.random.key(seed)
    size = self.config.eval.batch_size  # keys by batch index, as `encode`
    return np.concatenate(
      [
        np.asarray(_content_masks(model, params, jax.random.fold_in(key, start // size), batch))
        for start, batch in self._batches(x)
      ]
    )

  def sample(self, n: int, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """n generated images, uint8 (n, H, W, C): `generate`'s samples (the same seed, the same
    images as `--mode=sample`); an AE or DiffAE has no prior and raises a ValueError."""
    return self.to_images(self.generate(n, seed=seed, steps=steps)[0])

  def reconstruct(self, images, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """uint8 images (N, H, W, C) encoded and decoded again, uint8 (N, H, W, C).

    The model's `reconstruct` (`reconstruct_arrays`, as `--mode=reconstruct`). ParamReL: reverse
    sampling (Eq. 5) into z and `steps` subcodes, then their replay, which retraces each input's
    own Bayesian flow exactly; the image is the network's estimate at its end. A baseline: its
    own reconstruction.
    """
    x = self.to_model(images, seed=seed)
    return self.to_images(self.reconstruct_arrays(x, seed=seed, steps=steps)["reconstruction"])

  def likelihood(
    self, images, *, seed: int = 0, loss_steps: int | None = None
  ) -> dict[str, np.ndarray]:
    """Per-image bound terms in nats of uint8 images (N, H, W, C) (`likelihood_arrays`):
    'neg_elbo' (N,) is the bound on -log p(x); 'test_loss' the BFN term given z."""
    return self.likelihood_arrays(
      self.to_model(images, seed=seed), seed=seed, loss_steps=loss_steps
    )

  def conditional(
    self, images, num_variations: int = 8, *, seed: int = 0, steps: int | None = None
  ) -> np.ndarray:
    """Variations of uint8 images (N, H, W, C) that share each one's code:
    uint8 (N, num_variations, H, W, C) (`conditional_arrays`). Needs a Bayesian flow."""
    x = self.to_model(images, seed=seed)
    return self.to_images(self.conditional_arrays(x, num_variations, seed=seed, steps=steps))

  def interpolate(
    self, a, b, num: int = 8, *, seed: int = 0, steps: int | None = None
  ) -> np.ndarray:
    """`num` images from a to b (each uint8 (H, W, C)): uint8 (num, H, W, C).

    Both z and the subcodes move (`sampling.interpolation_method`, App. E); the first and the
    last image are `reconstruct` of a and of b. Needs a Bayesian flow (ParamReL).
    """
    self._needs_latents("interpolate", codes=True)
    x_a, x_b = self._one(a, "a", seed), self._one(b, "b", seed)
    return self.to_images(self.interpolate_arrays(x_a, x_b, num, seed=seed, steps=steps)[0])

  def traverse(self, image, dim: int, *, seed: int = 0, steps: int | None = None) -> np.ndarray:
    """Latent dimension `dim` of one uint8 image (H, W, C) set to sampling.traverse_steps values
    over [-sampling.traverse_range, +sampling.traverse_range], decoded with the image's own
    subcodes: uint8 (traverse_steps, H, W, C). Needs a Bayesian flow (ParamReL)."""
    self._needs_latents("traverse", codes=True)
    x = self._one(image, "image", seed)
    return self.to_images(self.traverse_arrays(x, [dim], seed=seed, steps=steps)[1][0])

  def plot_latents(
    self, images, directory: str, *, labels=None, name: str = "codes", seed: int = 0
  ) -> dict[str, str]:
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
    return latent_plots.save_projections(
      directory, name, arrays, factor_names=self.trained.info.factor_names, seed=seed
    )


class TableModel(LoadedModel):
  """A trained ParamReL on a table: pandas DataFrames in and out (module docstring).

  A DataFrame needs the run's columns (`config.data.schema`; others are ignored), with missing
  cells as NaN / None. Values are mapped to the model's records by the schema saved with the run
  (`data.tables.TableSchema`), and generated records back to the table's units and categories.
  The image-only methods (conditional, interpolate, traverse) raise a ValueError.
  """

  @property
  def schema(self):
    """The run's `data.tables.TableSchema`."""
    return self.config.data.schema

  def to_model(self, table, *, seed: int = 0, name: str = "table") -> dict[str, np.ndarray]:
    """A DataFrame -> the model's records {name: (N, 1)} (missing cells: NaN / -1).

    Raises:
      ValueError: not a non-empty DataFrame, a missing column, a non-numeric value in a numeric
        column, or a category the run never saw.
    """
    del seed  # records need no random preprocessing
    if not isinstance(table, pd.DataFrame) or table.empty:
      raise ValueError(
        f"{name} must be a non-empty pandas DataFrame with the run's columns "
        f"{list(self.schema.names)}, got {type(table).__name__}."
      )
    return self.schema.encode(table)[0]

  def to_images(self, x) -> np.ndarray:
    raise ValueError("a table run gives records, not images: use to_table.")

  def eval_data(self, num: int | None = None) -> pd.DataFrame:
    """The first `num` (None: all) rows of the run's test split as a DataFrame of its modelled
    columns, in the table's units (missing cells NaN / None; the label column left out)."""
    split, count = self._eval_split(num)
    return self.to_table({name: c[:count] for name, c in split.columns()["record"].items()})

  def to_table(self, records) -> pd.DataFrame:
    """The model's records {name: (N, 1)} -> a DataFrame in the table's units and categories."""
    return self.schema.decode(jax.device_get(records))

  def sample(self, n: int, *, seed: int = 0, steps: int | None = None) -> pd.DataFrame:
    """n generated records (Eq. 4, z from `latent_prior`) as a DataFrame; the same seed, the same
    rows as `--mode=sample`."""
    return self.to_table(self.generate(n, seed=seed, steps=steps)[0])

  def reconstruct(self, table, *, seed: int = 0, steps: int | None = None) -> pd.DataFrame:
    """The records of `table` reverse-sampled (Eq. 5) and replayed: observed cells come back
    (exactly, up to the flow's sigma1 for continuous columns), missing ones as one imputation."""
    x = self.to_model(table)
    return self.to_table(self.reconstruct_arrays(x, seed=seed, steps=steps)["reconstruction"])

  def impute(
    self,
    table,
    *,
    seed: int = 0,
    steps: int | None = None,
    draw: bool = True,
    num_draws: int = sampling.POINT_DRAWS,
  ) -> pd.DataFrame:
    """`table` with each missing cell of the run's columns filled given the record's observed
    cells (`ParamReL.impute`: Eq. 4 with the observed cells sent, z from the record as
    observed); observed cells and other columns are kept exactly as given. draw=True fills a
    draw (one imputation; another seed gives another), False the point estimate from
    `num_draws` imputations (the most frequent category, the mean of a numeric column; K times
    the work of a draw).

    Raises:
      ValueError: as `to_model`, or a run without a self-encoder.
    """
    self._needs_latents("impute", codes=True)
    x = self.to_model(table)
    model, key = self._model(steps), jax.random.key(seed)
    parts = [
      jax.device_get(
        model.impute(
          self.trained.params,
          jax.random.fold_in(key, start),
          batch,
          draw=draw,
          num_draws=num_draws,
        )
      )
      for start, batch in self._batches(x, "imputing")
    ]
    drawn = self.to_table(jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts))
    filled = table.copy()
    for name in self.schema.names:
      missing = filled[name].isna().to_numpy()
      if missing.any():
        if drawn[name].dtype != filled[name].dtype:
          filled[name] = filled[name].astype(object)
        filled.loc[missing, name] = drawn[name].to_numpy()[missing]
        if self.schema.columns[self.schema.names.index(name)].kind == "discretised":
          filled[name] = filled[name].astype("Int64")  # integers again, now without gaps
    return filled
