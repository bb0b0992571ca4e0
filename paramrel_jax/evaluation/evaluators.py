"""Evaluators run during training on the EMA weights (big_vision style), built from `evals`.

The config section `evals` maps a name to a settings dict, e.g.

  config.evals.likelihood = dict(every=1000, num_examples=1000, loss_steps=0)
  config.evals.auroc = dict(every=2000)
  config.evals.auroc_t05 = dict(type='auroc', every=2000, latent_time=0.5)

`type` (default: the name) picks the class of `EVALUATORS`; `every` (required, a multiple of
`training.log_every`, because the trainer runs them when it logs) is the step cadence; every other
key is an evaluator setting (see each class's `DEFAULTS`; None means "from the config": the
`eval` section, the data splits or the seed). An unknown name, an unknown setting, or an evaluator
that does not apply to the dataset or model raises ValueError at construction.

Each evaluator has `evaluate(model, params) -> dict` (the full JSON-able result, with the
scikit-learn version for the latent metrics) and `run(model, params, step)`, which yields the
scalar `(name, value)` pairs logged as `eval/<evaluator name>/<name>`; `model` is any
`interface.Model`, ParamReL or a baseline.

Latent evaluators encode the first `num_examples` examples of the training split (default) with
the model's `encode` at `latent_time` (`latents.export_latents`; 1 for a baseline) and `score`
the codes; `score` also takes exported codes (`cli.eval_modes.run_export_latents`, the PCA floor):
  auroc  5-fold logistic-probe AUROC on 'label' (MNIST-like data), 'attributes' (CelebA) or each
         factor separately (generated / 3DShapes data), `metrics.latent_auroc`;
  dci    DCI on the factors: protocol 'standard' (disentanglement_lib's: gradient-boosted trees
         with scikit-learn's defaults fitted on the first 10,000 codes, scored on the next 5,000,
         `metrics.dci`) or 'quick' (5-fold `metrics.dci_cv` on `num_examples` codes, fewer
         trees if set: a cheaper estimate, labelled as such);
  tad    5-fold TAD / ATTRS on the attributes, or on the factors binarised by `binarize_factors`
         (the upper half of each factor's value range vs the lower half), `metrics.tad_cv`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any, ClassVar

import jax
import numpy as np

from paramrel_jax import data, metrics
from paramrel_jax.bfn import checks
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.evaluation import latents, likelihood
from paramrel_jax.methods import interface
from paramrel_jax.methods.interface import Model


def jsonable(value: Any) -> Any:
  """numpy arrays / scalars inside dicts and lists turned into plain Python for json.dump."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def binarize_factors(factors: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
  """Factor k with S_k values -> the binary attribute [2 * value >= S_k] (upper half of its range).

  Args:
    factors: int (N, F) factor value indices.
    sizes: the number of values S_k of each factor.

  Returns:
    int32 (N, F) in {0, 1}.
  """
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] != len(sizes):
    raise ValueError(f"factors must have shape (N, {len(sizes)}), got {factors.shape}.")
  return (2 * factors >= np.asarray(sizes)[None, :]).astype(np.int32)


class Evaluator(abc.ABC):
  """Base class: settings parsing and the `run` / `evaluate` contract.

  Attributes:
    name: the key of `evals` this evaluator was built from (the log prefix).
    every: run every this many training steps.
    settings: the resolved settings (defaults filled in).
  """

  kind: ClassVar[str]
  DEFAULTS: ClassVar[dict[str, Any]] = {}

  def __init__(self, config: ExperimentConfig, settings: dict[str, Any], name: str | None = None):
    self.name = name or self.kind
    where = f"evals.{self.name}"
    settings = dict(settings)
    settings.pop("type", None)
    unknown = sorted(set(settings) - {"every"} - set(self.DEFAULTS))
    if unknown:
      raise ValueError(
        f"{where}: unknown setting(s) {unknown} of a {self.kind!r} evaluator; "
        f"known: {sorted(['every', *self.DEFAULTS])}."
      )
    every = settings.pop("every", None)
    checks.check_static_int(f"{where}.every (steps)", every, 1)
    if every % config.training.log_every:
      raise ValueError(
        f"{where}.every={every} is not a multiple of training.log_every="
        f"{config.training.log_every}; evaluators run when the trainer logs."
      )
    self.every = every
    self.data_cfg = config.data
    from_config = self._config_defaults(config)
    self.settings = {
      k: from_config.get(k) if v is None else v for k, v in {**self.DEFAULTS, **settings}.items()
    }

  @abc.abstractmethod
  def _config_defaults(self, config: ExperimentConfig) -> dict[str, Any]:
    """Values of the settings whose DEFAULTS entry is None."""

  def check_model(self, model: Model) -> None:  # noqa: B027 (most evaluators apply to any model)
    """Raises ValueError, naming this evaluator, when it does not apply to `model`."""

  @abc.abstractmethod
  def evaluate(self, model: Model, params: dict) -> dict:
    """The full result (JSON-able after `jsonable`)."""

  @abc.abstractmethod
  def scalars(self, result: dict) -> Iterator[tuple[str, float]]:
    """The logged (name, value) pairs of a result of `evaluate`."""

  def run(self, model: Model, params: dict, step: int) -> Iterator[tuple[str, float]]:
    """Evaluates the parameters of training step `step`; yields (name, value) pairs."""
    del step  # the same computation at every step; the caller logs the step
    yield from self.scalars(self.evaluate(model, params))


class LikelihoodEvaluator(Evaluator):
  """Test loss and negative ELBO (`likelihood.evaluate_likelihood`) on the evaluation split."""

  kind = "likelihood"
  DEFAULTS: ClassVar[dict[str, Any]] = {
    "split": None,  # data.eval_split
    "num_examples": None,  # eval.num_examples
    "batch_size": None,  # eval.batch_size
    "loss_steps": None,  # eval.loss_steps
    "n_repeats": None,  # eval.n_repeats
    "loss_samples": likelihood.DEFAULT_LOSS_SAMPLES,
    "sample_z": None,  # z ~ q unless objective.posterior = 'deterministic'
    "seed": None,  # config seed
  }

  def _config_defaults(self, config: ExperimentConfig) -> dict[str, Any]:
    return {
      "split": config.data.eval_split,
      "num_examples": config.eval.num_examples,
      "batch_size": config.eval.batch_size,
      "loss_steps": config.eval.loss_steps,
      "n_repeats": config.eval.n_repeats,
      "sample_z": config.objective.posterior == "gaussian",
      "seed": config.seed,
    }

  def check_model(self, model: Model) -> None:
    interface.require(model, interface.FLOW, f"evals.{self.name} (the BFN test likelihood)")

  def evaluate(self, model: Model, params: dict) -> dict:
    interface.require(model, interface.FLOW, f"evals.{self.name} (the BFN test likelihood)")
    return likelihood.evaluate_likelihood(model, params, self.data_cfg, **self.settings)

  def scalars(self, result: dict) -> Iterator[tuple[str, float]]:
    for term in likelihood.TERMS:
      yield f"{term}_bpd", result["bits_per_dim"][term]
    yield "test_loss_nats", result["nats_per_image"]["test_loss"]
    yield "neg_elbo_nats", result["nats_per_image"]["neg_elbo"]


class LatentEvaluator(Evaluator):
  """Base of the evaluators that score exported latents against the dataset's annotations."""

  LATENT_DEFAULTS: ClassVar[dict[str, Any]] = {
    "split": None,  # data.train_split
    "num_examples": None,  # eval.num_examples
    "batch_size": None,  # eval.batch_size
    "latent_time": None,  # eval.latent_time
    "n_folds": 5,
    "seed": None,  # config seed
  }
  min_latent_dim: ClassVar[int] = 1

  def __init__(self, config: ExperimentConfig, settings: dict[str, Any], name: str | None = None):
    super().__init__(config, settings, name)
    latent_dim = config.network.latent_dim
    if latent_dim < self.min_latent_dim:
      raise ValueError(
        f"evals.{self.name}: a {self.kind!r} evaluator needs model.latent_dim >= "
        f"{self.min_latent_dim}, got {latent_dim}."
      )
    self.info = data.dataset_info(config.data)

  def _config_defaults(self, config: ExperimentConfig) -> dict[str, Any]:
    return {
      "split": config.data.train_split,
      "num_examples": config.eval.num_examples,
      "batch_size": config.eval.batch_size,
      "latent_time": config.eval.latent_time,
      "seed": config.seed,
    }

  def check_model(self, model: Model) -> None:
    if self.settings["latent_time"] != 1.0 and not interface.has(model, interface.FLOW):
      raise ValueError(
        f"evals.{self.name}.latent_time={self.settings['latent_time']}: a {model.kind!r} model "
        "has no flow times; its codes need latent_time = 1."
      )

  def latents(self, model: Model, params: dict) -> dict[str, np.ndarray]:
    """Codes 'z' (N, L) and the labels of the configured split (`latents.export_latents`)."""
    s = self.settings
    return latents.export_latents(
      model,
      params,
      self.data_cfg,
      split=s["split"],
      batch_size=s["batch_size"],
      num_examples=s["num_examples"],
      latent_time=s["latent_time"],
      seed=s["seed"],
    )

  def evaluate(self, model: Model, params: dict) -> dict:
    return self.score(self.latents(model, params))

  @abc.abstractmethod
  def score(self, arrays: dict[str, np.ndarray]) -> dict:
    """The result for exported codes: 'z' (N, L) and the split's annotations (any model's)."""

  def _not_applicable(self, needs: str) -> ValueError:
    return ValueError(
      f"evals.{self.name}: a {self.kind!r} evaluator needs {needs}, which dataset "
      f"{self.data_cfg.name!r} does not have."
    )


class AurocEvaluator(LatentEvaluator):
  """Latent AUROC of a logistic probe (paper Table 2; `metrics.latent_auroc`)."""

  kind = "auroc"
  DEFAULTS: ClassVar[dict[str, Any]] = {**LatentEvaluator.LATENT_DEFAULTS, "target": None}

  def __init__(self, config: ExperimentConfig, settings: dict[str, Any], name: str | None = None):
    super().__init__(config, settings, name)
    available = [
      target
      for target, present in (
        ("label", self.info.has_label),
        ("attributes", bool(self.info.attribute_names)),
        ("factors", bool(self.info.factor_names)),
      )
      if present
    ]
    if not available:
      raise self._not_applicable("labels, attributes or factors")
    target = self.settings["target"] or available[0]
    if target not in available:
      raise ValueError(
        f"evals.{self.name}.target={target!r} is not available for dataset "
        f"{self.data_cfg.name!r}; available: {available}."
      )
    self.settings["target"] = target

  def score(self, arrays: dict[str, np.ndarray]) -> dict:
    s = self.settings
    z, labels = arrays["z"], arrays[s["target"]]
    base = {
      "target": s["target"],
      "split": s["split"],
      "num_examples": len(z),
      "latent_time": s["latent_time"],
    }
    if s["target"] != "factors":
      return {**base, **metrics.latent_auroc(z, labels, n_folds=s["n_folds"], seed=s["seed"])}
    per_factor = {
      name: metrics.latent_auroc(z, labels[:, k], n_folds=s["n_folds"], seed=s["seed"])
      for k, name in enumerate(self.info.factor_names)
    }
    means = [r["auroc_mean"] for r in per_factor.values()]
    return {
      **base,
      "auroc_mean": float(np.mean(means)),
      "per_factor": per_factor,
      "sklearn_version": next(iter(per_factor.values()))["sklearn_version"],
    }

  def scalars(self, result: dict) -> Iterator[tuple[str, float]]:
    yield "auroc", result["auroc_mean"]
    if "per_factor" in result:
      for name, r in result["per_factor"].items():
        yield f"auroc_{name}", r["auroc_mean"]
    else:
      yield "auroc_std", result["auroc_std"]


DCI_PROTOCOLS = ("standard", "quick")


class DciEvaluator(LatentEvaluator):
  """DCI disentanglement / completeness / informativeness on the factors.

  Protocol 'standard' (disentanglement_lib, the one to report): `num_train` codes to fit one
  gradient-boosted-tree classifier per factor (scikit-learn's defaults, `n_estimators` 100), the
  next `num_test` codes to score them (`metrics.dci`); the split must hold both. Protocol 'quick':
  k-fold `metrics.dci_cv` on `num_examples` codes. `n_jobs` factors are fitted in parallel.
  """

  kind = "dci"
  DEFAULTS: ClassVar[dict[str, Any]] = {
    **LatentEvaluator.LATENT_DEFAULTS,
    "protocol": "standard",
    "num_train": 10_000,
    "num_test": 5_000,
    "n_estimators": 100,
    "num_bins": 20,
    "n_jobs": 1,
  }
  min_latent_dim = 2

  def __init__(self, config: ExperimentConfig, settings: dict[str, Any], name: str | None = None):
    super().__init__(config, settings, name)
    if len(self.info.factor_names) < 2:
      raise self._not_applicable("at least 2 ground-truth factors")
    s = self.settings
    if s["protocol"] not in DCI_PROTOCOLS:
      raise ValueError(
        f"evals.{self.name}.protocol must be one of {DCI_PROTOCOLS}, got {s['protocol']!r}."
      )
    if s["protocol"] == "standard":
      needed = s["num_train"] + s["num_test"]
      available = self.info.num_train if s["split"] == config.data.train_split else None
      if available is not None and available < needed:
        raise ValueError(
          f"evals.{self.name}: the standard DCI protocol needs num_train + num_test = {needed} "
          f"codes, but split {s['split']!r} holds {available} examples; generate more "
          "(data.num_examples), lower num_train / num_test, or use protocol='quick'."
        )
      s["num_examples"] = needed

  def score(self, arrays: dict[str, np.ndarray]) -> dict:
    s = self.settings
    z, factors = arrays["z"], arrays["factors"]
    base = {
      "protocol": s["protocol"],
      "split": s["split"],
      "num_examples": len(z),
      "latent_time": s["latent_time"],
      "factor_names": list(self.info.factor_names),
    }
    if s["protocol"] == "quick":
      result = metrics.dci_cv(
        z,
        factors,
        n_folds=s["n_folds"],
        seed=s["seed"],
        num_bins=s["num_bins"],
        n_estimators=s["n_estimators"],
        n_jobs=s["n_jobs"],
      )
      return {**base, **result}
    if len(z) < s["num_train"] + s["num_test"]:
      raise ValueError(
        f"evals.{self.name}: the standard DCI protocol needs {s['num_train'] + s['num_test']} "
        f"codes, got {len(z)}."
      )
    train, test = slice(0, s["num_train"]), slice(s["num_train"], s["num_train"] + s["num_test"])
    result = metrics.dci(
      z[train],
      factors[train],
      z[test],
      factors[test],
      num_bins=s["num_bins"],
      n_estimators=s["n_estimators"],
      seed=s["seed"],
      n_jobs=s["n_jobs"],
    )
    return {**base, **result}

  @staticmethod
  def headline(result: dict) -> dict[str, Any]:
    """D, C, I (test accuracy) and the per-factor informativeness of either protocol's result."""
    suffix = "_mean" if result.get("protocol", "quick") == "quick" else ""
    return {
      "disentanglement": result[f"disentanglement{suffix}"],
      "completeness": result[f"completeness{suffix}"],
      "informativeness": result[f"informativeness_test{suffix}"],
      "informativeness_per_factor": np.asarray(result[f"informativeness_per_factor{suffix}"]),
    }

  def scalars(self, result: dict) -> Iterator[tuple[str, float]]:
    headline = self.headline(result)
    for score in ("disentanglement", "completeness", "informativeness"):
      yield score if score != "informativeness" else "informativeness_test", headline[score]


class TadEvaluator(LatentEvaluator):
  """TAD and ATTRS (`metrics.tad_cv`) on binary attributes or binarised factors."""

  kind = "tad"
  DEFAULTS: ClassVar[dict[str, Any]] = {
    **LatentEvaluator.LATENT_DEFAULTS,
    "auroc_threshold": 0.75,
    "entropy_threshold": 0.2,
  }
  min_latent_dim = 2

  def __init__(self, config: ExperimentConfig, settings: dict[str, Any], name: str | None = None):
    super().__init__(config, settings, name)
    if not (self.info.attribute_names or self.info.factor_names):
      raise self._not_applicable("binary attributes or factors")

  def score(self, arrays: dict[str, np.ndarray]) -> dict:
    s = self.settings
    if self.info.attribute_names:
      attributes, source = arrays["attributes"], "attributes"
      names = self.info.attribute_names
    else:
      attributes = binarize_factors(arrays["factors"], self.info.factor_sizes)
      source, names = "factors binarised as [2 * value >= size]", self.info.factor_names
    result = metrics.tad_cv(
      arrays["z"],
      attributes,
      n_folds=s["n_folds"],
      seed=s["seed"],
      auroc_threshold=s["auroc_threshold"],
      entropy_threshold=s["entropy_threshold"],
    )
    return {
      "split": s["split"],
      "num_examples": len(arrays["z"]),
      "latent_time": s["latent_time"],
      "attributes": source,
      "attribute_names": list(names),
      **result,
    }

  def scalars(self, result: dict) -> Iterator[tuple[str, float]]:
    yield "tad", result["tad_mean"]
    yield "attrs", result["attrs_mean"]


EVALUATORS: dict[str, type[Evaluator]] = {
  cls.kind: cls for cls in (LikelihoodEvaluator, AurocEvaluator, DciEvaluator, TadEvaluator)
}


def build_evaluators(config: ExperimentConfig, model: Model | None = None) -> list[Evaluator]:
  """The evaluators of `config.evals`, in its order, checked against `model` when given.

  Raises:
    ValueError: naming the entry, for an unknown type, a bad setting, or an evaluator that does
      not apply to the dataset or the model (e.g. 'likelihood' for a baseline).
  """
  built = []
  for name, settings in config.evals.items():
    if not isinstance(settings, dict):
      raise ValueError(f"evals.{name} must be a dict of settings, got {settings!r}.")
    kind = settings.get("type", name)
    if kind not in EVALUATORS:
      raise ValueError(
        f"evals.{name}: unknown evaluator {kind!r}; known: {sorted(EVALUATORS)} (set "
        "'type' to use another name)."
      )
    built.append(EVALUATORS[kind](config, settings, name))
    if model is not None:
      built[-1].check_model(model)
  return built


def run_due(evaluators: list[Evaluator], step: int, model: Model, params: dict) -> dict[str, float]:
  """Runs the evaluators with `step % every == 0` on `params` (the EMA weights).

  The parameters are placed once on this process's first device (the trainer passes host copies).

  Returns:
    {'eval/<name>/<scalar>': value} for every scalar of every evaluator that ran.
  """
  due = [evaluator for evaluator in evaluators if step % evaluator.every == 0]
  if not due:
    return {}
  params = jax.device_put(params, jax.local_devices()[0])
  return {
    f"eval/{evaluator.name}/{key}": float(value)
    for evaluator in due
    for key, value in evaluator.run(model, params, step)
  }
