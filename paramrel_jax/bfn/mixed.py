"""A product of Bayesian flows over the named columns of a record (mixed-type tables).

A record is a dict of columns, name -> (B, 1) array: floats in [-1, 1] for a continuous or
discretised column, int class indices for a discrete one. Each column keeps its own flow (its
sigma1 or beta(1), its bins or classes, its schedule); all columns of a record share one flow time
t (B,) or step i. The flows are independent given x, so the record's loss is the sum of the
columns' losses and its ELBO stays valid, in nats per record.

Missing cells are NaN (float columns) or -1 (discrete columns). A missing cell sends nothing: its
parameters stay at the prior at every t, its loss terms are left out, and the network input marks
it with an `observed` flag of 0. Before any math a missing cell is filled with a valid value (0, or
class 0), so no NaN reaches a gradient.

Every method delegates to the columns' `flows` objects; nothing of the per-type math is repeated.

Shapes: records x {name: (B, 1)}; the network input (B, `input_channels`) holds each column's
input channels and then its observed flag, column by column; the network output (B,
`output_channels`) holds each column's `params_per_dim` outputs, column by column.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax.bfn.flows import Flow, ImageFormat, OutputDist, Theta

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Record = dict[str, Array]

MISSING_CLASS = -1  # a missing cell of a discrete column


class RecordTheta(NamedTuple):
  """Input parameters of a batch of records.

  columns: name -> that column's parameters (GaussianTheta / CategoricalTheta of a (B, 1) column).
  observed: (B, num_columns) float, 1 where the cell is observed (its sender sends), else 0.
  """

  columns: dict[str, Theta]
  observed: Array


def _leaf_mask(mask: Array, leaf: Array) -> Array:
  """A (B,) bool mask reshaped to broadcast against leaf (B, ...)."""
  return mask.reshape(mask.shape + (1,) * (leaf.ndim - 1))


def _select(mask: Array, on_true, on_false):
  """Per-example choice between two pytrees of the same structure; mask (B,) bool."""
  return jax.tree.map(lambda a, b: jnp.where(_leaf_mask(mask, a), a, b), on_true, on_false)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class MixedFlow:
  """Independent Bayesian flows over a record's named columns, with one shared flow time.

  Attributes:
    columns: ((name, flow), ...) in record order; names unique, at least one column.
  """

  columns: tuple[tuple[str, Flow], ...]

  data_type = "mixed"

  def __post_init__(self):
    columns = tuple((str(name), flow) for name, flow in self.columns)
    if not columns:
      raise ValueError("a MixedFlow needs at least one column.")
    names = [name for name, _ in columns]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
      raise ValueError(f"column names must be unique, got {duplicates} more than once.")
    object.__setattr__(self, "columns", columns)

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(name for name, _ in self.columns)

  @property
  def input_channels(self) -> int:
    """Network input channels: each column's input channels plus its observed flag."""
    return sum(flow.input_channels_per_dim + 1 for _, flow in self.columns)

  @property
  def output_channels(self) -> int:
    """Network output channels: each column's `params_per_dim`."""
    return sum(flow.params_per_dim for _, flow in self.columns)

  # --- records and missing cells -----------------------------------------------------------------

  def _check_record(self, x: Record) -> None:
    if not isinstance(x, dict):
      raise ValueError(f"a record batch must be a dict of columns, got {type(x).__name__}.")
    missing, unknown = set(self.names) - set(x), set(x) - set(self.names)
    if missing or unknown:
      raise ValueError(
        f"the record's columns must be {list(self.names)}; missing {sorted(missing)}, "
        f"unknown {sorted(unknown)}."
      )
    shapes = {name: tuple(jnp.shape(x[name])) for name in self.names}
    batch = shapes[self.names[0]][:1]
    bad = {name: shape for name, shape in shapes.items() if len(shape) != 2 or shape[1] != 1}
    if bad or any(shape[:1] != batch for shape in shapes.values()):
      raise ValueError(f"every column must have shape (B, 1) with one B, got {shapes}.")

  def observed(self, x: Record) -> dict[str, Array]:
    """name -> (B,) bool, True where the cell holds a value (not NaN, not MISSING_CLASS)."""
    self._check_record(x)
    return {name: self._column_observed(flow, x[name]) for name, flow in self.columns}

  @staticmethod
  def _column_observed(flow: Flow, column: Array) -> Array:
    if flow.integer_data:
      return column[:, 0] != MISSING_CLASS
    return ~jnp.isnan(column[:, 0])

  def fill(self, x: Record) -> Record:
    """x with each missing cell replaced by a valid value (0.0, or class 0)."""
    self._check_record(x)
    return {
      name: jnp.where(self._column_observed(flow, x[name])[:, None], x[name], 0)
      for name, flow in self.columns
    }

  def hide(self, key: Array, x: Record, fraction: float) -> Record:
    """x with each cell made missing with probability `fraction` (one draw per cell, column k
    with fold_in(key, k)); missing cells stay missing."""
    self._check_record(x)
    hidden = {}
    for index, (name, flow) in enumerate(self.columns):
      drop = jax.random.bernoulli(jax.random.fold_in(key, index), fraction, jnp.shape(x[name]))
      missing = MISSING_CLASS if flow.integer_data else jnp.nan
      hidden[name] = jnp.where(drop, jnp.asarray(missing, jnp.asarray(x[name]).dtype), x[name])
    return hidden

  def _observed_matrix(self, x: Record) -> Array:
    observed = self.observed(x)
    return jnp.stack([observed[name] for name in self.names], axis=1)

  def validate_data(self, x: Record) -> None:
    """Host-side check: the columns are as named, (B, 1) each, and each column's observed values
    are valid data of its flow (missing cells: NaN, or MISSING_CLASS in a discrete column)."""
    self._check_record(x)
    for name, flow in self.columns:
      column = np.asarray(x[name])
      if flow.integer_data and not np.issubdtype(column.dtype, np.integer):
        raise ValueError(f"column {name!r}: classes must be ints, got dtype {column.dtype}.")
      observed = column != MISSING_CLASS if flow.integer_data else ~np.isnan(column)
      try:
        flow.validate_data(column[observed])
      except ValueError as error:
        raise ValueError(f"column {name!r}: {error}") from None

  def image_format(self) -> ImageFormat:
    """Records are not images: always raises ValueError (tables are read by `data.tables`)."""
    raise ValueError("flow.data_type='mixed' models a table's records, not images.")

  def image_pixels(self, x: Record) -> np.ndarray:
    """Records are not images: always raises ValueError (the table modes write CSV instead)."""
    raise ValueError(
      "a table's records have no pixels: flow.data_type='mixed' writes CSV files, not images."
    )

  # --- the flow ----------------------------------------------------------------------------------

  def prior(self, data_shape: tuple[int, ...], dtype=None) -> RecordTheta:
    """theta_0 of a batch (B, ...) of records: each column's prior, every cell observed."""
    batch = int(data_shape[0])
    columns = {name: flow.prior((batch, 1), dtype) for name, flow in self.columns}
    return RecordTheta(columns, jnp.ones((batch, len(self.columns)), jnp.result_type(float)))

  def check_batch(self, x: Record) -> None:
    """Raises ValueError unless x is a record batch: a dict of this flow's columns, (B, 1) each."""
    self._check_record(x)

  def codes_layout(self, z: Array, u: dict[str, Array]) -> tuple[int, tuple[int, int]]:
    """(n, data shape (B, columns)) of codes z (B, L) with subcodes {name: (B or 1, n, 1[, K])}
    of one n (a batch of 1 is shared by all z); raises ValueError for other shapes."""
    is_dict = isinstance(u, dict)
    shapes = {name: tuple(jnp.shape(a)) for name, a in u.items()} if is_dict else type(u).__name__
    expected = {name: 3 + column.y_event_ndim for name, column in self.columns}
    if (
      jnp.ndim(z) != 2
      or not is_dict
      or set(shapes) != set(expected)
      or any(len(shapes[name]) != ndim for name, ndim in expected.items())
      or len({shape[1] for shape in shapes.values()}) != 1
      or any(shape[0] not in (1, z.shape[0]) for shape in shapes.values())
    ):
      raise ValueError(
        f"record codes must hold z (B, L) and subcodes {{name: (B or 1, n, 1[, K])}} for the "
        f"columns {list(self.names)}, got {jnp.shape(z)} and {shapes}."
      )
    return next(iter(shapes.values()))[1], (z.shape[0], len(self.columns))

  def batch_prior(self, x: Record, dtype=None) -> RecordTheta:
    """theta_0 of the batch x: each column's prior, a missing cell flagged 0 (it has no sender,
    so `bayesian_update` keeps its prior)."""
    flags = self._observed_matrix(x)  # checks the record first
    theta = self.prior(flags.shape, dtype)
    return theta._replace(observed=flags.astype(theta.observed.dtype))

  def sample_flow(self, key: Array, x: Record, t: Array) -> RecordTheta:
    """theta ~ p_F(theta | x; t) column by column (its own key), one t (B,) for the record; a
    missing cell keeps its prior."""
    filled, observed = self.fill(x), self.observed(x)
    columns = {}
    for index, (name, flow) in enumerate(self.columns):
      theta = flow.sample_flow(jax.random.fold_in(key, index), filled[name], t)
      prior = flow.prior(filled[name].shape, jax.tree.leaves(theta)[0].dtype)
      columns[name] = _select(observed[name], theta, prior)
    flags = self._observed_matrix(x)
    return RecordTheta(columns, flags.astype(jax.tree.leaves(columns)[0].dtype))

  def _inputs(self, parts: dict[str, Array], observed: Array) -> Array:
    """Concatenates each column's (B, Cin) input and its (B, 1) flag, column by column."""
    pieces = []
    for index, name in enumerate(self.names):
      part = parts[name]
      pieces += [part, observed[:, index : index + 1].astype(part.dtype)]
    return jnp.concatenate(pieces, axis=-1)

  def net_input(self, theta: RecordTheta) -> Array:
    """(B, input_channels): each column's `net_input` and its observed flag."""
    parts = {name: flow.net_input(theta.columns[name]) for name, flow in self.columns}
    return self._inputs(parts, theta.observed)

  def data_input(self, x: Record) -> Array:
    """The record in `net_input`'s format (theta at the data); a missing cell reads as its
    prior's input with flag 0."""
    filled, observed = self.fill(x), self.observed(x)
    parts = {}
    for name, flow in self.columns:
      data = flow.data_input(filled[name])
      prior = flow.net_input(flow.prior(filled[name].shape, data.dtype))
      parts[name] = jnp.where(observed[name][:, None], data, prior)
    return self._inputs(parts, self._observed_matrix(x))

  def output_dist(self, net_out: Array, theta: RecordTheta, t: Array) -> dict[str, OutputDist]:
    """name -> that column's output distribution, from its slice of net_out (B, output_channels)."""
    if net_out.ndim != 2 or net_out.shape[1] != self.output_channels:
      raise ValueError(
        f"net_out must have shape (B, {self.output_channels}), got {tuple(net_out.shape)}."
      )
    out, start = {}, 0
    for name, flow in self.columns:
      stop = start + flow.params_per_dim
      out[name] = flow.output_dist(net_out[:, start:stop], theta.columns[name], t)
      start = stop
    return out

  def _masked(self, x: Record, per_column) -> dict[str, Array]:
    """name -> per_column(index, name, flow, filled column) (B,), 0 where the cell is missing."""
    filled, observed = self.fill(x), self.observed(x)
    return {
      name: jnp.where(observed[name], per_column(index, name, flow, filled[name]), 0.0)
      for index, (name, flow) in enumerate(self.columns)
    }

  def column_ctime_losses(self, x: Record, out: dict[str, OutputDist], t: Array) -> dict:
    """name -> L^inf of that column (B,) (0 where missing)."""
    return self._masked(x, lambda _, name, flow, col: flow.ctime_loss(col, out[name], t))

  def ctime_loss(self, x: Record, out: dict[str, OutputDist], t: Array) -> Array:
    """L^inf of the record: the sum of its observed columns' (B,)."""
    return _total(self.column_ctime_losses(x, out, t))

  def column_dtime_losses(
    self, key: Array, x: Record, out: dict, i: Array, n: int, num_samples: int = 1
  ) -> dict:
    """name -> L^n of that column (B,) (its own key; 0 where missing)."""

    def loss(index, name, flow, column):
      k = jax.random.fold_in(key, index)
      return flow.dtime_loss(k, column, out[name], i, n, num_samples)

    return self._masked(x, loss)

  def dtime_loss(
    self, key: Array, x: Record, out: dict, i: Array, n: int, num_samples: int = 1
  ) -> Array:
    """L^n of the record: the sum of its observed columns' (B,)."""
    return _total(self.column_dtime_losses(key, x, out, i, n, num_samples))

  def column_reconstruction_losses(self, x: Record, out: dict) -> dict:
    """name -> -ln p_O(x_column | theta_1) (B,) (0 where missing)."""
    return self._masked(x, lambda _, name, flow, col: flow.reconstruction_loss(col, out[name]))

  def reconstruction_loss(self, x: Record, out: dict) -> Array:
    """-ln p_O(x | theta_1) of the record's observed cells (B,)."""
    return _total(self.column_reconstruction_losses(x, out))

  def ctime_weight(self, t: Array) -> Array:
    """The sum over columns of each column's L^inf weight, t's shape."""
    return sum(flow.ctime_weight(t) for _, flow in self.columns)

  def mean_ctime_weight(self) -> float:
    """The mean of `ctime_weight` over t ~ U[0, 1]: the sum of the columns' means."""
    return sum(flow.mean_ctime_weight() for _, flow in self.columns)

  def accuracy(self, i: ArrayLike, n: int, dtype=None) -> dict[str, Array]:
    """name -> alpha_i of that column's schedule."""
    return {name: flow.accuracy(i, n, dtype) for name, flow in self.columns}

  def sender_sample(self, key: Array, x: Record, alpha: dict) -> dict[str, Array]:
    """name -> y ~ p_S(. | x_column; alpha_column), its own key (a missing cell's y is unused)."""
    filled = self.fill(x)
    return {
      name: flow.sender_sample(jax.random.fold_in(key, index), filled[name], alpha[name])
      for index, (name, flow) in enumerate(self.columns)
    }

  def receiver_sample(self, key: Array, out: dict, alpha: dict) -> dict[str, Array]:
    """name -> y ~ p_R(. | out_column; alpha_column), its own key."""
    return {
      name: flow.receiver_sample(jax.random.fold_in(key, index), out[name], alpha[name])
      for index, (name, flow) in enumerate(self.columns)
    }

  def observe(self, x: Record):
    """(key, y, alpha) -> y with each observed cell's y replaced by a sender sample of x, for
    `generate.generate(observe=...)`: the observed cells' parameters then follow p_F(theta | x; t)
    and the missing cells are generated given them (imputation)."""
    observed = self.observed(x)

    def replace(key: Array, y: dict, alpha: dict) -> dict:
      sent = self.sender_sample(key, x, alpha)
      return {name: _select(observed[name], sent[name], y[name]) for name in self.names}

    return replace

  def data_sample(self, key: Array, x: Record, out: dict, alpha: dict) -> dict[str, Array]:
    """y of a step that reads the record x: a sender sample of each observed cell (key, as
    `sender_sample`), a receiver draw y ~ p_R(. | out; alpha) of each missing one
    (fold_in(key, 1)), which has no sender."""
    drawn = self.receiver_sample(jax.random.fold_in(key, 1), out, alpha)
    return self.observe(x)(key, drawn, alpha)

  def receiver_moments(self, out: dict, alpha: dict) -> tuple[dict, dict]:
    """(m, s): name -> that column's `receiver_moments`."""
    moments = {name: flow.receiver_moments(out[name], alpha[name]) for name, flow in self.columns}
    return {n: m for n, (m, _) in moments.items()}, {n: s for n, (_, s) in moments.items()}

  def _update(self, theta: RecordTheta, y: dict, alpha: dict, inverse: bool) -> RecordTheta:
    columns = {}
    for index, (name, flow) in enumerate(self.columns):
      old = theta.columns[name]
      update = flow.inverse_bayesian_update if inverse else flow.bayesian_update
      columns[name] = _select(theta.observed[:, index] > 0, update(old, y[name], alpha[name]), old)
    return RecordTheta(columns, theta.observed)

  def bayesian_update(self, theta: RecordTheta, y: dict, alpha: dict) -> RecordTheta:
    """h(theta, y, alpha) column by column; a cell whose flag is 0 keeps its parameters."""
    return self._update(theta, y, alpha, inverse=False)

  def inverse_bayesian_update(self, theta_new: RecordTheta, y: dict, alpha: dict) -> RecordTheta:
    """theta with bayesian_update(theta, y, alpha) == theta_new."""
    return self._update(theta_new, y, alpha, inverse=True)

  def flow_estimate(self, theta: RecordTheta) -> Record:
    """name -> the column read off its input parameters."""
    return {name: flow.flow_estimate(theta.columns[name]) for name, flow in self.columns}

  def data_estimate(self, out: dict) -> Record:
    """name -> the column's point estimate from its output distribution."""
    return {name: flow.data_estimate(out[name]) for name, flow in self.columns}

  def point_of_draws(self, draws: dict) -> Record:
    """name -> the point estimate (B, 1) of K draws (K, B, 1) of each cell (e.g. K imputations
    of a record, whose mixture estimates its predictive distribution): each column's own
    (`Flow.point_of_draws`: the most frequent class, the mean, or the mean at its bin centre)."""
    self._check_record({name: draws[name][0] for name in draws})
    return {name: flow.point_of_draws(draws[name]) for name, flow in self.columns}

  def sample_output(self, key: Array, out: dict) -> Record:
    """name -> a draw of the column's output distribution, its own key."""
    return {
      name: flow.sample_output(jax.random.fold_in(key, index), out[name])
      for index, (name, flow) in enumerate(self.columns)
    }

  def agreement(self, x0: Record, x: Record) -> dict[str, Array]:
    """Per-record agreement of an estimate x with the records x0 over their observed cells, (B,)
    each: 'max_abs_error' over the continuous and discretised columns, 'accuracy' (the fraction
    of cells in the same class, or the same bin of width 2 / K) over the discretised and
    discrete ones."""
    observed = self.observed(x0)
    errors, hits, counts = [], [], []
    for name, column in self.columns:
      seen = observed[name]
      if column.integer_data:
        hit = x[name][:, 0] == x0[name][:, 0]
      else:
        error = jnp.abs(x[name][:, 0] - jnp.nan_to_num(x0[name][:, 0]))
        errors.append(jnp.where(seen, error, 0.0))
        hit = error * column.num_bins < 1  # the same bin, of width 2 / K (discretised)
      if column.finite_values:
        hits.append(jnp.where(seen, hit, False))
        counts.append(seen)
    stats = {}
    if errors:
      stats["max_abs_error"] = jnp.max(jnp.stack(errors, axis=1), axis=1)
    if hits:
      hit, count = jnp.stack(hits, axis=1), jnp.stack(counts, axis=1)
      stats["accuracy"] = jnp.sum(hit, axis=1) / jnp.maximum(jnp.sum(count, axis=1), 1)
    return stats


def _total(per_column: dict[str, Array]) -> Array:
  """The sum of per-column (B,) losses."""
  return sum(per_column.values())
