"""Diffusion autoencoder baselines of paper Tables 2 and 3: DiffAE and InfoDiffusion.

A static encoder q(z | x0) (the ParamReL self-encoder in its 'vanilla' form, on x0 in [-1, 1];
binary data as {-1, 1}) and a DDPM noise predictor eps(x_s, z, s) that is the ParamReL output
U-Net (`networks.unet.OutputUNet`, conditioned on z and the step by AdaGN, paper Eq. 12), with
the diffusion step s in {0, ..., T - 1} given to it as the time t = s / T (its sinusoidal embedding
scales t by 1000, so T = 1000 gives the DDPM step embedding). Per example x0 the loss is

  L(x0) = || eps - eps(sqrt(abar_s) x0 + sqrt(1 - abar_s) eps, z, s) ||^2       (summed over pixels)
        + kl_weight * KL[q(z | x0) || N(0, I)] + mmd_weight * MMD(q(z) || N(0, I))

with s ~ U{0..T-1}, eps ~ N(0, I) and abar the cumulative product of the linear (DDPM) or cosine
(Nichol & Dhariwal, 2021) schedule. DiffAE (Preechakul et al., 2022) takes z = the posterior mean
and no KL / MMD terms; InfoDiffusion (Wang et al., 2023) draws z by reparameterisation and adds
the rate and the MMD with the ParamReL objective's weights. The summed squared error keeps the
loss on the per-image scale of the other models' objectives, so the weights mean the same.

Generation and reconstruction follow the deterministic DDIM ODE (Song et al., 2021; eta = 0) on
`sample_steps` = n steps tau_k = round((k + 1) T / n) - 1, k = 0..n-1, with the data at abar = 1:
`ddim_decode` maps x_T (at tau_{n-1}) to x0 and `ddim_invert` maps x0 to x_T with the same z
(DiffAE's stochastic encoder), so `reconstruct` = invert, then decode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax.bfn import checks
from paramrel_jax.methods.baselines.autoencoders import (
  Autoencoder,
  AutoencoderTerms,
  DataSpace,
  active_dims,
  batch_mmd,
)
from paramrel_jax.methods.paramrel import objective
from paramrel_jax.networks import NetworkConfig, OutputUNet, SelfEncoder

SCHEDULES = ("linear", "cosine")
# The noise predictor as the DDIM functions take it: (x (B, H, W, C), step int32 ()) -> eps.
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def alphas_cumprod(schedule: str, steps: int) -> np.ndarray:
  """abar_s = prod_{r <= s} (1 - beta_r) for s = 0..steps-1, float64 (steps,).

  'linear': beta from 1e-4 to 0.02 at 1000 steps, both scaled by 1000 / steps (Ho et al., 2020;
  Nichol & Dhariwal, 2021); 'cosine': abar = f(s + 1) / f(0), f(s) = cos^2((s / T + 0.008) /
  1.008 * pi / 2), each beta clipped at 0.999 (Nichol & Dhariwal, 2021).
  """
  checks.check_choice("schedule", schedule, SCHEDULES)
  checks.check_static_int("diffusion_steps", steps, 1)
  if schedule == "linear":
    scale = 1000.0 / steps
    betas = np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
  else:
    f = np.cos((np.arange(steps + 1) / steps + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], 0.999)
  return np.cumprod(1.0 - betas)


def ddim_timesteps(diffusion_steps: int, sample_steps: int) -> np.ndarray:
  """The n = sample_steps steps tau_k = round((k + 1) T / n) - 1 (ascending ints, last T - 1)."""
  if not isinstance(sample_steps, int) or not 1 <= sample_steps <= diffusion_steps:
    raise ValueError(
      f"sample_steps must be an integer in [1, diffusion_steps={diffusion_steps}], got "
      f"{sample_steps!r}."
    )
  k = np.arange(1, sample_steps + 1)
  return np.round(k * diffusion_steps / sample_steps).astype(np.int64) - 1


def ddim_step(x: jax.Array, eps: jax.Array, abar_from, abar_to) -> jax.Array:
  """One deterministic DDIM move from noise level abar_from to abar_to with predicted noise eps.

  x0_hat = (x - sqrt(1 - abar_from) eps) / sqrt(abar_from);
  returns sqrt(abar_to) x0_hat + sqrt(1 - abar_to) eps (Song et al., 2021, Eq. 12, sigma = 0).
  Scalars or arrays broadcast against x (B, H, W, C).
  """
  x0_hat = (x - jnp.sqrt(1.0 - abar_from) * eps) / jnp.sqrt(abar_from)
  return jnp.sqrt(abar_to) * x0_hat + jnp.sqrt(1.0 - abar_to) * eps


def _ddim_scan(
  eps_fn: EpsFn, x: jax.Array, steps: np.ndarray, abar_from: np.ndarray, abar_to: np.ndarray
) -> jax.Array:
  """`ddim_step` for each (step, abar_from, abar_to) in order under lax.scan, eps at (x, step)."""

  def body(x, inputs):
    step, from_k, to_k = inputs
    return ddim_step(x, eps_fn(x, step), from_k, to_k), None

  inputs = tuple(
    jnp.asarray(a, dtype)
    for a, dtype in ((steps, jnp.int32), (abar_from, jnp.float32), (abar_to, jnp.float32))
  )
  x, _ = jax.lax.scan(body, x.astype(jnp.float32), inputs)
  return x


def ddim_invert(
  eps_fn: EpsFn, x0: jax.Array, *, abar: np.ndarray, timesteps: np.ndarray
) -> jax.Array:
  """DDIM inversion x0 -> x_T: the deterministic ODE run from the data towards the noise.

  The levels are the data (abar = 1) and then timesteps tau_0 < ... < tau_{n-1}; step k moves
  level k to level k + 1 with eps evaluated at level k (the data level at step 0).

  Args:
    eps_fn: (x (B, H, W, C), step (int32 scalar)) -> predicted noise (B, H, W, C).
    x0: (B, H, W, C) data in model space.
    abar: (T,) cumulative alphas (`alphas_cumprod`).
    timesteps: (n,) ascending steps (`ddim_timesteps`).

  Returns:
    x_T (B, H, W, C) float32 at step tau_{n-1}.
  """
  levels = np.concatenate([[1.0], abar[timesteps]])
  steps = np.concatenate([[0], timesteps[:-1]])
  return _ddim_scan(eps_fn, x0, steps, levels[:-1], levels[1:])


def ddim_decode(
  eps_fn: EpsFn, x_t: jax.Array, *, abar: np.ndarray, timesteps: np.ndarray
) -> jax.Array:
  """DDIM decoding x_T -> x0 (Song et al., 2021, eta = 0), the reverse of `ddim_invert`.

  Step k moves level k + 1 (step tau_k) to level k with eps evaluated at level k + 1, for
  k = n - 1, ..., 0; the last step lands on the data level (abar = 1), i.e. the predicted x0.

  Args:
    eps_fn: (x (B, H, W, C), step (int32 scalar)) -> predicted noise (B, H, W, C).
    x_t: (B, H, W, C) at step tau_{n-1}.
    abar: (T,) cumulative alphas.
    timesteps: (n,) ascending steps.

  Returns:
    x0 (B, H, W, C) float32 in model space (not clipped).
  """
  levels = np.concatenate([[1.0], abar[timesteps]])
  return _ddim_scan(eps_fn, x_t, timesteps[::-1], levels[1:][::-1], levels[:-1][::-1])


class DiffusionAutoencoderNet(nn.Module):
  """Encoder q(z | x0) and z-conditioned noise predictor eps(x_s, z, s).

  Attributes:
    config: network sizes, with `encoder` = 'vanilla' and latent_dim > 0.
    channels: data channels C (the predictor's output channels).
  """

  config: NetworkConfig
  channels: int

  def setup(self):
    self.encoder = SelfEncoder(self.config)
    self.denoiser = OutputUNet(self.config, self.channels)

  def encode(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """(mean, logvar) (B, latent_dim) of q(z | x0) for x0 (B, H, W, C) in [-1, 1]."""
    return self.encoder(x, jnp.zeros(x.shape[:1], jnp.float32), train=train)

  def denoise(self, x: jax.Array, z: jax.Array, t: jax.Array, *, train: bool) -> jax.Array:
    """Predicted noise (B, H, W, C) float32 of x_s (B, H, W, C) at t = s / T (B,) given z."""
    return self.denoiser(x, z, t, train=train)

  def __call__(
    self, x: jax.Array, t: jax.Array, *, train: bool
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Runs both networks (creates all parameters at `init`): (mean, logvar, eps)."""
    mean, logvar = self.encode(x, train=train)
    return mean, logvar, self.denoise(x, mean, t, train=train)


@dataclasses.dataclass(frozen=True)
class DiffusionAutoencoder:
  """DiffAE / InfoDiffusion as an `interface.Model` (module docstring).

  Attributes:
    kind: the model.kind it stands for ('diffae' or 'infodiffusion').
    net: the encoder and noise predictor.
    space: the data type (binary data become {-1, 1} floats; outputs are thresholded at 0).
    image_shape: (H, W, C) of the data.
    variational: InfoDiffusion (z drawn by reparameterisation) instead of DiffAE (z = mean).
    kl_weight: weight of KL[q(z | x0) || N(0, I)].
    mmd_weight: weight of MMD(q(z) || N(0, I)).
    mmd_kernel: 'rbf' or 'imq'.
    diffusion_steps: T of the DDPM.
    schedule: 'linear' or 'cosine' noise schedule.
    sample_steps: steps of DDIM decoding and inversion (reconstruct, sample).
  """

  capabilities: ClassVar[frozenset[str]] = frozenset()

  net: DiffusionAutoencoderNet
  space: DataSpace
  image_shape: tuple[int, int, int]
  variational: bool
  kl_weight: float = 0.0
  mmd_weight: float = 0.0
  mmd_kernel: str = "imq"
  diffusion_steps: int = 1000
  schedule: str = "linear"
  sample_steps: int = 100
  kind: str = "diffae"

  @property
  def latent_dim(self) -> int:
    return self.net.config.latent_dim

  def __post_init__(self):
    alphas_cumprod(self.schedule, self.diffusion_steps)  # validates both
    ddim_timesteps(self.diffusion_steps, self.sample_steps)
    if self.kl_weight < 0 or self.mmd_weight < 0:
      raise ValueError(
        f"kl_weight and mmd_weight must be >= 0, got {self.kl_weight}, {self.mmd_weight}."
      )
    if not self.variational and (self.kl_weight or self.mmd_weight):
      raise ValueError("DiffAE (variational=False) takes no KL / MMD terms.")
    if self.net.channels != self.image_shape[-1]:
      raise ValueError(
        f"net.channels={self.net.channels} differs from image_shape[-1]={self.image_shape[-1]}."
      )

  def _check_shape(self, shape: tuple[int, ...], name: str) -> None:
    if tuple(shape[1:]) != tuple(self.image_shape):
      raise ValueError(f"{name} must have shape (B, *{tuple(self.image_shape)}), got {shape}.")

  def init(self, key: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """Parameters for data of shape (B, H, W, C)."""
    self._check_shape(tuple(data_shape), "data_shape")
    x = jnp.zeros(data_shape, jnp.float32)
    t = jnp.zeros(data_shape[:1], jnp.float32)
    return self.net.init({"params": key}, x, t, train=False)["params"]

  def _apply(self, params: dict, method: str, *args, train: bool = False, rng=None):
    rngs = {"dropout": rng} if train else None
    return self.net.apply(
      {"params": params}, *args, train=train, rngs=rngs, method=getattr(self.net, method)
    )

  def _noise_error(
    self, params: dict, x0: jax.Array, z: jax.Array, s: jax.Array, eps: jax.Array, **kw
  ) -> jax.Array:
    """|| eps - eps(x_s, z, s) ||^2 (B,) for steps s (B,) int and noise eps (B, H, W, C)."""
    abar = jnp.asarray(alphas_cumprod(self.schedule, self.diffusion_steps), jnp.float32)[s]
    abar = abar[:, None, None, None]
    x_s = jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * eps
    t = s.astype(jnp.float32) / self.diffusion_steps
    eps_hat = self._apply(params, "denoise", x_s, z, t, **kw)
    return jnp.sum(jnp.square(eps_hat - eps), axis=(1, 2, 3))

  def _terms(
    self, params: dict, key: jax.Array, x: jax.Array, *, train: bool, rng=None
  ) -> tuple[AutoencoderTerms, dict[str, jax.Array]]:
    k_s, k_eps, k_z, k_prior = jax.random.split(key, 4)
    x0 = self.space.to_model(x)
    mean, logvar = self._apply(params, "encode", x0, train=train, rng=rng)
    z = objective.reparameterise(k_z, mean, logvar) if self.variational else mean
    s = jax.random.randint(k_s, x.shape[:1], 0, self.diffusion_steps)
    eps = jax.random.normal(k_eps, x0.shape, jnp.float32)
    recon = self._noise_error(params, x0, z, s, eps, train=train, rng=rng)
    rate = objective.gaussian_kl(mean, logvar) if self.variational else jnp.zeros_like(recon)
    mmd = batch_mmd(k_prior, z, self.mmd_kernel)
    loss = recon + self.kl_weight * rate + self.mmd_weight * mmd
    aux = {"mean": mean, "z": z, "x0": x0, "s": s, "eps": eps}
    terms = AutoencoderTerms(loss=loss, recon=recon, rate=rate, mmd=mmd, tc=jnp.zeros_like(loss))
    return terms, aux

  def loss(
    self, params: dict, key: jax.Array, batch: dict, dropout_key: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean training loss of a batch and the batch means of every term ('recon': noise error)."""
    terms, _ = self._terms(params, key, batch["image"], train=True, rng=dropout_key)
    return terms.loss.mean(), terms.means()

  def diagnostics(self, params: dict, key: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Latent usage without dropout: the noise-error gap under shuffled z, active dimensions."""
    terms, aux = self._terms(params, key, batch["image"], train=False)
    z_shuffled = jnp.roll(aux["z"], shift=1, axis=0)
    shuffled = self._noise_error(params, aux["x0"], z_shuffled, aux["s"], aux["eps"])
    return {
      "z_shuffle_gap": jnp.mean(shuffled - terms.recon),
      "active_dims": active_dims(aux["mean"]),
    }

  # Same encoder interface (`_apply`, `_check_shape`, `space`) as the autoencoders.
  encode = Autoencoder.encode

  def _eps_fn(self, params: dict, z: jax.Array) -> EpsFn:
    """The noise predictor given z, as the DDIM functions take it."""

    def eps_fn(x: jax.Array, step: jax.Array) -> jax.Array:
      t = jnp.full(x.shape[:1], step / self.diffusion_steps, jnp.float32)
      return self._apply(params, "denoise", x, z, t)

    return eps_fn

  def _ddim_grid(self) -> tuple[np.ndarray, np.ndarray]:
    return (
      alphas_cumprod(self.schedule, self.diffusion_steps),
      ddim_timesteps(self.diffusion_steps, self.sample_steps),
    )

  def ddim_invert(self, params: dict, x0: jax.Array, z: jax.Array) -> jax.Array:
    """x_T (B, H, W, C) of x0 (B, H, W, C) in [-1, 1] (model space) by the DDIM ODE given z."""
    abar, timesteps = self._ddim_grid()
    return ddim_invert(self._eps_fn(params, z), x0, abar=abar, timesteps=timesteps)

  def ddim_decode(self, params: dict, x_t: jax.Array, z: jax.Array) -> jax.Array:
    """x0 (B, H, W, C) in model space (unclipped) from x_T (B, H, W, C) by the DDIM ODE given z."""
    abar, timesteps = self._ddim_grid()
    return ddim_decode(self._eps_fn(params, z), x_t, abar=abar, timesteps=timesteps)

  def reconstruct(self, params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """DDIM inversion of x with its own code, then DDIM decoding: data of x's shape and dtype."""
    z = self.encode(params, key, x)
    x_t = self.ddim_invert(params, self.space.to_model(x), z)
    return self.space.from_model(self.ddim_decode(params, x_t, z))

  def sample(
    self, params: dict, key: jax.Array, num: int, z: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """DDIM samples (num, H, W, C) with z ~ N(0, I) (or the given z) and x_T ~ N(0, I)
    (InfoDiffusion), and z.

    Raises:
      ValueError: for DiffAE, whose latents have no prior (DiffAE samples them with a separately
        trained latent DDIM, which is not part of this baseline).
    """
    if not self.variational:
      raise ValueError(
        "DiffAE has no prior over its latents and cannot sample unconditionally; decode "
        "encoded latents with ddim_decode, or use InfoDiffusion."
      )
    k_z, k_x = jax.random.split(key)
    if z is None:
      z = jax.random.normal(k_z, (num, self.net.config.latent_dim), jnp.float32)
    x_t = jax.random.normal(k_x, (num, *self.image_shape), jnp.float32)
    return self.space.from_model(self.ddim_decode(params, x_t, z)), z
