"""The boundary between ml_collections configs and the library: typed, validated dataclasses.

`resolve(config)` turns a `ConfigDict` (see `configs/base.py`) into an `ExperimentConfig` of
frozen dataclasses; every library module takes those, never the ConfigDict. All checks that can
be made before compiling anything happen here and raise `ValueError` naming the field.

A table run (data.source='csv', flow.data_type='mixed') also needs its `tables.TableSchema`:
`resolve(config, schema)` takes the one saved with a run, and without it fits one to the table
at data.path; its MixedFlow becomes the run's flow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from paramrel_jax.bfn import checks
from paramrel_jax.bfn.flows import Flow, make_flow
from paramrel_jax.config.baselines import MODEL_KINDS, BaselineConfig
from paramrel_jax.config.network import NetworkConfig, get_variant
from paramrel_jax.config.objective import ObjectiveConfig
from paramrel_jax.data import tables
from paramrel_jax.data.config import BINARIZE_MODES, DataConfig

LR_SCHEDULES = ("constant", "cosine")
Z_SOURCES = ("prior", "encoder")
Z_PRIORS = ("fitted", "standard")
INTERPOLATION_METHODS = ("lerp", "slerp")  # of z and the subcodes (sampling.interpolation_method)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Optimiser, schedule and loop cadence (config section `training`)."""

  batch_size: int = 64
  num_steps: int = 1000
  learning_rate: float = 1e-4
  warmup_steps: int = 100
  lr_schedule: str = "constant"
  weight_decay: float = 0.0
  grad_clip: float = 1.0
  adam_b1: float = 0.9
  adam_b2: float = 0.99
  ema_decay: float = 0.999
  log_every: int = 50
  checkpoint_every: int = 500
  keep_checkpoints: int = 3

  def __post_init__(self):
    for name in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
      checks.check_static_int(f"training.{name}", getattr(self, name), 1)
    checks.check_positive("training.learning_rate", self.learning_rate, setting=True)
    checks.check_range("training.warmup_steps", self.warmup_steps, 0)
    checks.check_choice("training.lr_schedule", self.lr_schedule, LR_SCHEDULES)
    checks.check_range("training.ema_decay", self.ema_decay, 0, 1, open_high=True)
    checks.check_range("training.grad_clip", self.grad_clip, 0)
    checks.check_range("training.weight_decay", self.weight_decay, 0)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Generation settings (config section `sampling`, paper Eq. 4)."""

  num_steps: int = 100
  num_samples: int = 64
  z_source: str = "prior"
  z_prior: str = "fitted"
  prior_examples: int = 2000
  prior_times: int = 11
  num_variations: int = 7
  z_times: tuple[float, ...] = (0.1, 0.2, 0.3)
  interpolation_points: int = 8
  interpolation_method: str = "slerp"
  traverse_steps: int = 7
  traverse_range: float = 3.0
  after_training: bool = False

  def __post_init__(self):
    object.__setattr__(self, "z_times", tuple(float(t) for t in self.z_times))
    for name in (
      "num_steps",
      "num_samples",
      "num_variations",
      "traverse_steps",
      "prior_examples",
      "prior_times",
    ):
      checks.check_static_int(f"sampling.{name}", getattr(self, name), 1)
    checks.check_positive("sampling.traverse_range", self.traverse_range, setting=True)
    checks.check_static_int("sampling.interpolation_points", self.interpolation_points, 2)
    checks.check_choice(
      "sampling.interpolation_method", self.interpolation_method, INTERPOLATION_METHODS
    )
    for t in self.z_times:
      checks.check_range("sampling.z_times", t, 0, 1)
    checks.check_choice("sampling.z_source", self.z_source, Z_SOURCES)
    checks.check_choice("sampling.z_prior", self.z_prior, Z_PRIORS)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Evaluation sizes (config section `eval`); the split is `data.eval_split`.

  Attributes:
    num_examples: examples of the evaluation split used (reconstruction, likelihood, export).
    batch_size: evaluation batch.
    loss_steps: n of the n-step test loss (0: continuous time).
    n_repeats: passes over the examples averaged by the likelihood evaluator.
    latent_time: flow time at which exported latents are the encoder mean (1 = data end).
    latent_times: further flow times exported as `z_t<time>`.
  """

  num_examples: int = 256
  batch_size: int = 64
  loss_steps: int = 0
  n_repeats: int = 1
  latent_time: float = 1.0
  latent_times: tuple[float, ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "latent_times", tuple(float(t) for t in self.latent_times))
    checks.check_range("eval.latent_time", self.latent_time, 0, 1)
    for t in self.latent_times:
      checks.check_range("eval.latent_times", t, 0, 1)
    for name in ("num_examples", "batch_size", "n_repeats"):
      checks.check_static_int(f"eval.{name}", getattr(self, name), 1)
    checks.check_range("eval.loss_steps", self.loss_steps, 0)


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """Multi-host start-up (config section `distributed`): one process per host.

  Attributes:
    initialize: call `jax.distributed.initialize` before anything else touches the devices.
    coordinator_address: 'host:port' of process 0; '' lets JAX find it (TPU pods, SLURM, MPI).
    num_processes: number of processes; 0 lets JAX find it.
    process_id: this process's index; -1 lets JAX find it.
  """

  initialize: bool = False
  coordinator_address: str = ""
  num_processes: int = 0
  process_id: int = -1

  def initialize_kwargs(self) -> dict[str, Any]:
    """The arguments of `jax.distributed.initialize` that were set explicitly."""
    kwargs: dict[str, Any] = {}
    if self.coordinator_address:
      kwargs["coordinator_address"] = self.coordinator_address
    if self.num_processes > 0:
      kwargs["num_processes"] = self.num_processes
    if self.process_id >= 0:
      kwargs["process_id"] = self.process_id
    return kwargs


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A whole resolved experiment."""

  seed: int
  data: DataConfig
  flow: Flow
  model_kind: str
  baseline: BaselineConfig
  network: NetworkConfig
  objective: ObjectiveConfig
  training: TrainingConfig
  sampling: SamplingConfig
  eval: EvalConfig
  evals: dict[str, dict[str, Any]]
  distributed: DistributedConfig
  compile_cache: str  # see paramrel_jax.training.compile_cache


def _section(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
  section = config.get(name)
  if section is None:
    raise ValueError(f"config has no section {name!r}.")
  return section.to_dict()


def _build(cls, name: str, values: dict[str, Any]):
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - fields)
  if unknown:
    raise ValueError(
      f"unknown key(s) {unknown} in config section {name!r}; known: {sorted(fields)}."
    )
  return cls(**values)


def _table_flow(
  data_values: dict[str, Any], flow_cfg: dict[str, Any], schema: tables.TableSchema | None
) -> tuple[Flow, tables.TableSchema]:
  """(MixedFlow, schema) of a table run: `schema`, or one fitted to the table at data.path."""
  if data_values.get("source") != "csv":
    raise ValueError(
      f"flow.data_type='mixed' models tables: it needs data.source='csv', got "
      f"{data_values.get('source')!r}."
    )
  if schema is None:
    if not data_values.get("path"):
      raise ValueError("DataConfig.path must name a .csv or .parquet table when source='csv'.")
    schema = tables.infer_schema(
      tables.read_table(data_values["path"]),
      tables.parse_kinds(data_values.get("columns", "")),
      data_values.get("label") or None,
      data_values.get("scaling", "range"),
    )
  return schema.flow(sigma1=flow_cfg["sigma1"], beta1=flow_cfg["beta1"]), schema


def _image_flow(data_values: dict[str, Any], flow_cfg: dict[str, Any], predict_std: bool) -> Flow:
  """The flow of an image run; sets data.num_bins and an 'auto' data.binarize from the images
  it models (`Flow.image_format`) and raises if an explicit binarize disagrees."""
  data_type = flow_cfg["data_type"]
  flow = make_flow(
    data_type,
    sigma1=flow_cfg["sigma1"],
    beta1=flow_cfg["beta1"],
    num_bins=flow_cfg["num_bins"],
    num_classes=flow_cfg["num_classes"],
    predict_std=predict_std,
  )
  image = flow.image_format()
  data_values["num_bins"] = image.num_bins
  binarize = data_values.get("binarize")
  if binarize == "auto":
    data_values["binarize"] = "threshold" if image.binarized else "none"
  elif (binarize != "none") != image.binarized:
    raise ValueError(
      f"data.binarize={binarize!r} does not fit flow.data_type={data_type!r}: its images are "
      + (
        "binarised (binarize='threshold' or 'bernoulli')."
        if image.binarized
        else "floats in [-1, 1] (binarize='none')."
      )
    )
  return flow


def resolve(
  config: ml_collections.ConfigDict, schema: tables.TableSchema | None = None
) -> ExperimentConfig:
  """Validated, typed experiment from a ConfigDict; raises ValueError naming the bad field.

  Args:
    config: the experiment's ConfigDict.
    schema: a table run's saved schema (`tables.TableSchema.load`); None fits one to the table
      at data.path. Ignored by image runs.
  """
  flow_cfg = _section(config, "flow")
  data_type = flow_cfg["data_type"]
  model_cfg = _section(config, "model")
  data_values = _section(config, "data")
  binarize = data_values.get("binarize")
  if binarize not in ("auto", *BINARIZE_MODES):
    raise ValueError(f"data.binarize must be 'auto' or one of {BINARIZE_MODES}, got {binarize!r}.")
  if data_type == "mixed":
    flow, data_values["schema"] = _table_flow(data_values, flow_cfg, schema)
    if binarize == "auto":
      data_values["binarize"] = "none"
  elif data_values.get("source") == "csv":
    raise ValueError(
      f"data.source='csv' reads tables of records, which need flow.data_type='mixed', got "
      f"{data_type!r}."
    )
  else:
    flow = _image_flow(data_values, flow_cfg, model_cfg["predict_std"])
  data = _build(DataConfig, "data", data_values)

  model_kind = model_cfg.pop("kind")
  checks.check_choice("model.kind", model_kind, MODEL_KINDS)
  baseline = BaselineConfig(
    beta=model_cfg.pop("beta"), diffusion_steps=model_cfg.pop("diffusion_steps")
  )
  size = model_cfg.pop("size")
  model_cfg.pop("predict_std")
  network = get_variant(size, **model_cfg)
  if data_type == "mixed":
    network.check_records()

  objective = ObjectiveConfig(
    **_section(config, "objective"),
    loss_steps=flow_cfg["loss_steps"],
    loss_samples=flow_cfg["loss_samples"],
  )
  if objective.encoder_mask and (data_type != "mixed" or network.encoder_input == "theta_t"):
    raise ValueError(
      f"objective.encoder_mask={objective.encoder_mask} hides cells of a table's records from an "
      f"encoder of the data: it needs flow.data_type='mixed' (got {data_type!r}) and "
      f"model.encoder_input 'data' or 'final_params' (got {network.encoder_input!r})."
    )
  training = _build(TrainingConfig, "training", _section(config, "training"))
  sampling = _build(SamplingConfig, "sampling", _section(config, "sampling"))
  if (
    model_kind == "paramrel"
    and sampling.z_source == "encoder"
    and network.encoder_input != "theta_t"
  ):
    raise ValueError(
      f"sampling.z_source='encoder' needs model.encoder_input='theta_t' (generation has no "
      f"data to encode), got model.encoder_input={network.encoder_input!r}."
    )
  compile_cache = config.get("compile_cache", "user")
  if not isinstance(compile_cache, str) or not compile_cache:
    raise ValueError(
      f"compile_cache must be 'user', 'workdir', 'off' or a directory, got {compile_cache!r}."
    )
  return ExperimentConfig(
    seed=int(config.seed),
    data=data,
    flow=flow,
    model_kind=model_kind,
    baseline=baseline,
    network=network,
    objective=objective,
    training=training,
    sampling=sampling,
    eval=_build(EvalConfig, "eval", _section(config, "eval")),
    evals=_section(config, "evals"),
    distributed=_build(DistributedConfig, "distributed", _section(config, "distributed")),
    compile_cache=compile_cache,
  )
