"""Tests of the representation metrics on synthetic latents with known answers."""

import numpy as np
import pytest
import sklearn
from sklearn.metrics import roc_auc_score

from paramrel_jax.metrics import (
  completeness_score,
  dci,
  dci_cv,
  detector_aurocs,
  discretize_factors,
  disentanglement_score,
  entropy_reduction,
  frechet_distance,
  latent_auroc,
  pca_features,
  pca_frechet_distance,
  tad,
  tad_cv,
)


def _rng(seed: int = 0) -> np.random.Generator:
  return np.random.default_rng(seed)


def _labelled_codes(n: int = 400, num_classes: int = 4, seed: int = 0):
  """Codes whose first `num_classes` dims are a noisy one-hot of the label, plus 2 noise dims."""
  rng = _rng(seed)
  labels = np.arange(n) % num_classes
  z = 3.0 * np.eye(num_classes)[labels] + 0.1 * rng.normal(size=(n, num_classes))
  return np.concatenate([z, rng.normal(size=(n, 2))], axis=1), labels


# ---------------------------------------------------------------- latent AUROC


def test_auroc_perfect_probe_multiclass():
  z, labels = _labelled_codes()
  result = latent_auroc(z, labels)
  assert result["task"] == "multiclass"
  assert result["auroc_mean"] > 0.99
  assert result["n_folds"] == 5 and len(result["per_fold"]) == 5
  assert result["auroc_std"] == pytest.approx(np.std(result["per_fold"]))
  assert result["sklearn_version"] == sklearn.__version__
  assert "per_attribute" not in result


def test_auroc_noise_is_chance_and_std_is_reported():
  rng = _rng(1)
  labels = np.arange(600) % 3
  result = latent_auroc(rng.normal(size=(600, 8)), labels)
  assert abs(result["auroc_mean"] - 0.5) < 0.1
  assert result["auroc_std"] > 0.0


def test_auroc_binary_labels():
  rng = _rng(2)
  labels = rng.integers(0, 2, size=300).astype(bool)
  z = np.stack([labels + 0.1 * rng.normal(size=300), rng.normal(size=300)], axis=1)
  assert latent_auroc(z, labels)["task"] == "binary"
  assert latent_auroc(z, labels)["auroc_mean"] > 0.99
  assert abs(latent_auroc(z[:, 1:], labels)["auroc_mean"] - 0.5) < 0.1


def test_auroc_multilabel_attributes():
  rng = _rng(3)
  attributes = rng.integers(0, 2, size=(400, 3))
  informative = np.concatenate(
    [attributes + 0.1 * rng.normal(size=(400, 3)), rng.normal(size=(400, 2))], axis=1
  )
  result = latent_auroc(informative, attributes, n_folds=4)
  assert result["task"] == "multilabel"
  assert len(result["per_fold"]) == 4 and len(result["per_attribute"]) == 3
  assert min(result["per_attribute"]) > 0.99
  assert result["auroc_mean"] == pytest.approx(np.mean(result["per_attribute"]))
  noise = latent_auroc(rng.normal(size=(400, 5)), attributes, n_folds=4)
  assert abs(noise["auroc_mean"] - 0.5) < 0.1


def test_auroc_is_deterministic_given_the_seed():
  rng = _rng(4)
  labels = np.arange(300) % 3
  z = labels[:, None] + 2.0 * rng.normal(size=(300, 3))
  assert latent_auroc(z, labels, seed=7) == latent_auroc(z, labels, seed=7)
  assert latent_auroc(z, labels) == latent_auroc(z, labels, n_folds=5, seed=0)  # the defaults
  assert latent_auroc(z, labels, seed=7)["per_fold"] != latent_auroc(z, labels, seed=8)["per_fold"]


@pytest.mark.parametrize(
  ("z", "labels", "kwargs", "match"),
  [
    (np.zeros(20), np.arange(20) % 2, {}, "z must be 2-D"),
    (np.zeros((20, 0)), np.arange(20) % 2, {}, "z must have at least 1"),
    (np.full((20, 2), np.nan), np.arange(20) % 2, {}, "z contains 40 non-finite"),
    (np.zeros((20, 2)), np.arange(19) % 2, {}, "same number of examples"),
    (np.zeros((20, 2)), (np.arange(20) % 2).astype(np.float32), {}, "labels must hold integer"),
    (np.zeros((20, 2)), np.zeros((20, 1, 1), int), {}, "labels must have shape"),
    (np.zeros((20, 2)), np.zeros(20, int), {}, "at least 2 classes"),
    (np.zeros((20, 2)), np.r_[np.zeros(17, int), np.ones(3, int)], {}, r"classes \[1\] have fewer"),
    (np.zeros((20, 2)), 2 * np.eye(20, 2, dtype=int), {}, r"^labels must be binary"),
    (np.zeros((20, 2)), 2 * np.eye(20, 2, dtype=int), {}, r"binary with values in \{0, 1\}"),
    (np.zeros((20, 2)), np.eye(20, 2, dtype=int), {}, r"labels\[:, 0\] has 1 positive"),
    (np.zeros((20, 2)), np.arange(20) % 2, {"n_folds": 1}, "n_folds must be an integer >= 2"),
    (np.zeros((20, 2)), np.arange(20) % 2, {"n_folds": 21}, "cannot exceed"),
    (np.zeros((20, 2)), np.arange(20) % 2, {"seed": -1}, "seed must be"),
  ],
)
def test_auroc_validation(z, labels, kwargs, match):
  with pytest.raises(ValueError, match=match):
    latent_auroc(z, labels, **kwargs)


def test_auroc_attribute_constant_in_a_fold_is_an_error():
  # 5 positives: enough in total for 5 folds, but KFold may put two in one test fold.
  attributes = np.zeros((40, 1), int)
  attributes[:5] = 1
  with pytest.raises(ValueError, match=r"labels\[:, 0\] is constant on the test part of fold"):
    latent_auroc(_rng().normal(size=(40, 2)), attributes)


def test_auroc_folds_follow_n_folds_and_the_seed():
  """n_folds sets the splits of both label kinds; the seed shuffles them, also for attributes."""
  z, labels = _labelled_codes(n=120, num_classes=3)
  z = z + 2.0 * _rng(5).normal(size=z.shape)
  for n_folds in (3, 4):
    per_fold = latent_auroc(z, labels, n_folds=n_folds)["per_fold"]
    assert len(per_fold) == n_folds and all(isinstance(v, float) for v in per_fold)
  attributes = np.stack([labels == 0, labels == 1], axis=1).astype(int)
  first = latent_auroc(z, attributes, n_folds=3, seed=2)
  assert first == latent_auroc(z, attributes, n_folds=3, seed=2)
  assert first["per_fold"] != latent_auroc(z, attributes, n_folds=3, seed=3)["per_fold"]


def test_auroc_needs_exactly_n_folds_examples_of_each_class():
  z = _rng(6).normal(size=(30, 2))
  labels = np.r_[np.zeros(27, int), np.ones(3, int)]  # 3 of class 1: one per test fold
  assert len(latent_auroc(z, labels, n_folds=3)["per_fold"]) == 3
  three = np.where(np.arange(30) < 4, 2, labels)  # 4 of class 2: enough, so only class 1 is named
  with pytest.raises(
    ValueError,
    match=r"^labels: classes \[1\] have fewer than n_folds=4 exam"
    r"ples; every class needs at least one example in each test fold\.$",
  ):
    latent_auroc(z, three, n_folds=4)
  with pytest.raises(ValueError, match=r"labels\[:, 0\] has 3 positive .* for 4-fold cross"):
    latent_auroc(z, np.c_[labels, 1 - labels], n_folds=4)


def test_auroc_attribute_constant_on_a_training_part_is_an_error():
  attributes = np.zeros((20, 1), int)
  attributes[:2] = 1  # 2 folds: when both positives share a test fold, the other trains on none
  z = _rng(7).normal(size=(20, 2))
  for seed in range(20):
    try:
      latent_auroc(z, attributes, n_folds=2, seed=seed)
    except ValueError as e:
      if "training part" in str(e):
        assert str(e).startswith("labels[:, 0] is constant on the training part of fold")
        assert str(e).endswith("; use fewer folds, more examples, or drop this attribute.")
        return
  raise AssertionError("no seed left a training part constant")


# ---------------------------------------------------------------- DCI


def _factor_codes(n: int = 1000, num_factors: int = 4, seed: int = 0):
  rng = _rng(seed)
  factors = rng.integers(0, 5, size=(n, num_factors))
  return factors, rng


def test_dci_aligned_code_is_disentangled_and_complete():
  factors, rng = _factor_codes()
  z = factors + 0.05 * rng.normal(size=factors.shape)
  result = dci(z[:800], factors[:800], z[800:], factors[800:], n_estimators=20)
  assert result["disentanglement"] > 0.9 and result["completeness"] > 0.9
  assert result["informativeness_test"] > 0.9
  importance = result["importance_matrix"]
  assert importance.shape == (4, 4)
  np.testing.assert_allclose(importance.sum(axis=0), 1.0)
  np.testing.assert_array_equal(np.argmax(importance, axis=0), np.arange(4))
  assert result["disentanglement_per_code"].shape == (4,)
  assert result["completeness_per_factor"].shape == (4,)
  assert result["informativeness_per_factor"].shape == (4,)
  assert result["informativeness_per_factor"].mean() == pytest.approx(
    result["informativeness_test"]
  )
  assert result["sklearn_version"] == sklearn.__version__
  # A factor the codes leave out is guessed at chance (5 values), the others still read off.
  missing = dci(z[:800, :3], factors[:800], z[800:, :3], factors[800:], n_estimators=20)
  accuracy = missing["informativeness_per_factor"]
  assert accuracy[3] < 0.35 and np.all(accuracy[:3] > 0.9)


@pytest.mark.parametrize("rotation", ["hadamard", "random"])
def test_dci_rotated_code_scores_lower(rotation):
  factors, rng = _factor_codes()
  if rotation == "hadamard":  # every code mixes every factor equally
    matrix = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
  else:
    matrix, _ = np.linalg.qr(rng.normal(size=(4, 4)))
  centred = factors - 2.0
  aligned = centred + 0.05 * rng.normal(size=factors.shape)
  rotated = centred @ matrix + 0.05 * rng.normal(size=factors.shape)
  split = dict(n_estimators=20)
  good = dci(aligned[:800], factors[:800], aligned[800:], factors[800:], **split)
  bad = dci(rotated[:800], factors[:800], rotated[800:], factors[800:], **split)
  for score in ("disentanglement", "completeness"):
    assert bad[score] < 0.6
    assert bad[score] < good[score] - 0.3


def test_dci_scores_of_known_importance_matrices():
  assert disentanglement_score(np.eye(3))[0] == pytest.approx(1.0)
  assert completeness_score(np.eye(3))[0] == pytest.approx(1.0)
  assert disentanglement_score(np.ones((3, 4)))[0] == pytest.approx(0.0, abs=1e-9)
  assert completeness_score(np.ones((3, 4)))[0] == pytest.approx(0.0, abs=1e-9)
  # Two codes each for one factor: disentangled (D = 1) but not complete (C = 1 - log_4 2 = 0.5).
  importance = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])
  assert disentanglement_score(importance)[0] == pytest.approx(1.0)
  assert completeness_score(importance)[0] == pytest.approx(0.5)
  # An unused code gets D_l = 0 (entropy of the near-uniform eps row) but zero weight.
  score, per_code = disentanglement_score(np.array([[1.0, 0], [0, 1], [0, 0]]))
  assert score == pytest.approx(1.0) and per_code[2] == pytest.approx(0.0, abs=1e-9)
  with pytest.raises(ValueError, match="^importance_matrix must be non-negative"):
    disentanglement_score(-np.eye(2))
  with pytest.raises(ValueError, match="^importance_matrix contains 1 non-finite"):
    disentanglement_score(np.array([[1.0, np.nan], [0, 1]]))
  with pytest.raises(ValueError, match="importance_matrix must be 2-D"):
    completeness_score(np.ones((1, 3)))


def test_dci_scores_weigh_by_total_importance_of_any_scale():
  """Weights are importance shares whatever the total (here 0.5); an all-zero matrix scores 0."""
  importance = np.array([[0.3, 0.0], [0.1, 0.1]])  # code 0 disentangled, code 1 not at all
  score, per_code = disentanglement_score(importance)
  np.testing.assert_allclose(per_code, [1.0, 0.0], atol=1e-9)
  assert score == pytest.approx(0.3 / 0.5)  # code 0's share of the total importance
  score, per_factor = completeness_score(importance)
  np.testing.assert_allclose(per_factor, [1 - 0.811278 / 1.0, 1.0], atol=1e-6)  # H(3/4) in bits
  assert score == pytest.approx(0.8 * per_factor[0] + 0.2 * per_factor[1])
  for fn in (disentanglement_score, completeness_score):
    assert fn(np.zeros((3, 2)))[0] == pytest.approx(0.0, abs=1e-9)


def test_discretize_factors_keeps_classes_and_bins_continuous_factors():
  rng = _rng(5)
  train = np.stack([rng.choice([0.0, 0.5, 2.0], size=200), rng.uniform(-1, 1, size=200)], axis=1)
  test = np.array([[2.0, -5.0], [0.5, 5.0]])
  codes_train, codes_test = discretize_factors(train, test, num_bins=4)
  assert codes_train.dtype == codes_test.dtype == np.int64
  np.testing.assert_array_equal(np.unique(codes_train[:, 0]), [0, 1, 2])
  # Exactly num_bins distinct values stay classes (equal-width bins would merge 0 and 0.5).
  three_bins = discretize_factors(train, test, num_bins=3)
  np.testing.assert_array_equal(three_bins[0][:, 0], codes_train[:, 0])
  np.testing.assert_array_equal(codes_test[:, 0], [2, 1])
  # Equal-width bins over the training range [-1, 1]: edges at -0.5, 0 and 0.5.
  expected = np.digitize(train[:, 1], np.linspace(train[:, 1].min(), train[:, 1].max(), 5)[1:-1])
  np.testing.assert_array_equal(codes_train[:, 1], expected)
  np.testing.assert_array_equal(codes_test[:, 1], [0, 3])  # out of range: end bins
  with pytest.raises(ValueError, match="num_bins must be an integer >= 2"):
    discretize_factors(train, test, num_bins=1)
  for bad_train, bad_test in ((train[:, 0], test), (train, test[:, 0])):  # either one 1-D
    with pytest.raises(
      ValueError,
      match=r"^factors_train and factors_test must be 2-D \(N, K\), "
      r"got shapes",
    ):
      discretize_factors(bad_train, bad_test, num_bins=4)
  with pytest.raises(
    ValueError,
    match=r"^factors_train and factors_test must have the same "
    r"number of factors K, got",
  ):
    discretize_factors(train, test[:, :1], num_bins=4)


def test_dci_continuous_factors_and_determinism():
  rng = _rng(6)
  factors = rng.uniform(size=(400, 2))
  z = np.concatenate([factors, rng.normal(size=(400, 1))], axis=1)
  args = (z[:300], factors[:300], z[300:], factors[300:])
  result = dci(*args, num_bins=5, n_estimators=10, seed=3)
  assert result["importance_matrix"].shape == (3, 2)
  assert result["informativeness_test"] > 0.8
  again = dci(*args, num_bins=5, n_estimators=10, seed=3)
  np.testing.assert_array_equal(result["importance_matrix"], again["importance_matrix"])
  # Factors fitted in two processes give the same classifiers, so the same scores.
  parallel = dci(*args, num_bins=5, n_estimators=10, seed=3, n_jobs=2)
  np.testing.assert_array_equal(result["importance_matrix"], parallel["importance_matrix"])
  np.testing.assert_array_equal(
    result["informativeness_per_factor"], parallel["informativeness_per_factor"]
  )


def test_dci_cv_reports_folds():
  factors, rng = _factor_codes(n=300, num_factors=2)
  z = factors + 0.05 * rng.normal(size=factors.shape)
  result = dci_cv(z, factors, n_folds=3, n_estimators=5)
  assert result["n_folds"] == 3 and len(result["per_fold"]) == 3
  assert result["disentanglement_mean"] > 0.9
  values = [fold["disentanglement"] for fold in result["per_fold"]]
  assert result["disentanglement_std"] == pytest.approx(np.std(values))
  per_factor = [fold["informativeness_per_factor"] for fold in result["per_fold"]]
  np.testing.assert_allclose(result["informativeness_per_factor_mean"], np.mean(per_factor, 0))
  assert (
    dci_cv(z, factors, n_folds=3, n_estimators=5)["per_fold"][0]["completeness"]
    == (result["per_fold"][0]["completeness"])
  )


def test_dci_informativeness_is_the_accuracy_of_each_factors_trees():
  """Train and test accuracy of sklearn's GradientBoostingClassifier per factor, by value."""
  from sklearn.ensemble import GradientBoostingClassifier

  factors, rng = _factor_codes(n=160, num_factors=2)
  z = factors + 1.5 * rng.normal(size=factors.shape)  # noisy: train and test accuracy differ
  result = dci(z[:100], factors[:100], z[100:], factors[100:], n_estimators=7, seed=3)
  train, test = [], []
  for k in range(2):
    trees = GradientBoostingClassifier(n_estimators=7, random_state=3)
    trees.fit(z[:100], factors[:100, k])
    train.append(trees.score(z[:100], factors[:100, k]))
    test.append(trees.score(z[100:], factors[100:, k]))
  assert result["informativeness_train"] == pytest.approx(np.mean(train), abs=1e-12)
  assert result["informativeness_test"] == pytest.approx(np.mean(test), abs=1e-12)
  np.testing.assert_allclose(result["informativeness_per_factor"], test, atol=1e-12)
  assert np.mean(train) > np.mean(test)


def test_dci_defaults_are_the_documented_protocol():
  """20 bins, 100 trees, seed 0; n_jobs changes no score. A binary factor is enough."""
  rng = _rng(15)
  factors = np.c_[rng.uniform(size=80), rng.integers(0, 2, size=80)]  # continuous and binary
  z = factors + 0.3 * rng.normal(size=factors.shape)
  args = (z[:60], factors[:60], z[60:], factors[60:])
  keys = ("disentanglement", "completeness", "informativeness_test")
  default = dci(*args)
  explicit = dci(*args, num_bins=20, n_estimators=100, seed=0, n_jobs=2)
  assert [default[k] for k in keys] == [explicit[k] for k in keys]
  for other in ({"seed": 1}, {"num_bins": 5}, {"n_estimators": 10}):
    assert [dci(*args, **other)[k] for k in keys] != [default[k] for k in keys], other


_F = np.arange(40).reshape(20, 2) % 3


@pytest.mark.parametrize(
  ("args", "kwargs", "match"),
  [
    ((np.zeros(20), _F, np.zeros((20, 2)), _F), {}, "z_train must be 2-D"),
    ((np.zeros((20, 1)), _F, np.zeros((20, 1)), _F), {}, "z_train must have at least 2"),
    ((np.zeros((20, 2)), _F[:, :1], np.zeros((20, 2)), _F), {}, "factors_train must be 2-D"),
    ((np.zeros((19, 2)), _F, np.zeros((20, 2)), _F), {}, "z_train: 19, factors_train: 20"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 3)), _F), {}, "same L"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), np.c_[_F, _F]), {}, "same number of factors"),
    ((np.zeros((20, 2)), _F * np.nan, np.zeros((20, 2)), _F), {}, "factors_train contains"),
    ((np.zeros((20, 2)), _F.astype(str), np.zeros((20, 2)), _F), {}, "must hold real numbers"),
    ((np.zeros((20, 2)), np.c_[_F[:, 0], 0 * _F[:, 1]], np.zeros((20, 2)), _F), {}, "is constant"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F), {"n_estimators": 0}, "n_estimators must"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F), {"num_bins": 1}, "num_bins must"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F), {"n_jobs": 0}, "n_jobs must be a nonzero"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F), {"n_jobs": 1.5}, "n_jobs must be a nonzero"),
    ((np.zeros((20, 2)), _F, np.zeros(20), _F), {}, "^z_test must be 2-D"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F[:, 0]), {}, "^factors_test must be 2-D"),
    ((np.zeros((20, 2)), _F, np.zeros((20, 2)), _F), {"seed": -1}, "^seed must be an integer"),
  ],
)
def test_dci_validation(args, kwargs, match):
  dci(np.zeros((20, 2)), _F, np.zeros((20, 2)), _F, n_estimators=1)  # the base inputs are valid
  with pytest.raises(ValueError, match=match):
    dci(*args, **kwargs)


def test_dci_cv_validation():
  with pytest.raises(ValueError, match="z: 20, factors: 19"):
    dci_cv(np.zeros((20, 2)), _F[:19])
  with pytest.raises(ValueError, match="n_folds must be"):
    dci_cv(np.zeros((20, 2)), _F, n_folds=0)


# ---------------------------------------------------------------- TAD / ATTRS


def _attribute_codes(n: int = 1000, num_attributes: int = 4, noise_dims: int = 4, seed: int = 0):
  """Independent attributes, each carried by its own latent dimension, plus noise dimensions."""
  rng = _rng(seed)
  attributes = rng.integers(0, 2, size=(n, num_attributes))
  z = np.concatenate(
    [attributes + 0.1 * rng.normal(size=attributes.shape), rng.normal(size=(n, noise_dims))], axis=1
  )
  return z, attributes, rng


def test_tad_counts_each_captured_attribute():
  z, attributes, _ = _attribute_codes()
  result = tad(z, attributes)
  assert result["attrs"] == 4
  # A perfect detector against chance-level others: a difference of about 1 - 0.5 each.
  assert result["tad"] > 0.45 * 4
  per = result["per_attribute"]
  np.testing.assert_array_equal(per["best_dim"], np.arange(4))
  assert per["captured"].all() and np.all(per["best_auroc"] > 0.99)
  assert result["tad"] == pytest.approx(per["auroc_difference"].sum())
  assert result["aurocs"].shape == (4, 8)
  assert result["sklearn_version"] == sklearn.__version__
  # Rank-based: flipping signs and rescaling dimensions changes nothing.
  scaled = tad(-3.0 * z + 1.0, attributes)
  assert scaled["tad"] == pytest.approx(result["tad"]) and scaled["attrs"] == 4


def test_tad_noise_captures_nothing():
  rng = _rng(7)
  result = tad(rng.normal(size=(1000, 6)), rng.integers(0, 2, size=(1000, 3)))
  assert result["attrs"] == 0 and result["tad"] == 0.0


def test_tad_duplicated_detector_is_captured_with_no_difference():
  # Each attribute is carried by two dimensions: a good detector, but not a disentangled one.
  z, attributes, rng = _attribute_codes(num_attributes=2, noise_dims=0)
  z = np.concatenate([z, attributes + 0.1 * rng.normal(size=attributes.shape)], axis=1)
  result = tad(z, attributes)
  assert result["attrs"] == 2
  assert result["tad"] < 0.05


def test_tad_excludes_attributes_explained_by_another():
  z, attributes, rng = _attribute_codes(num_attributes=3)
  # Attribute 3 is attribute 0 with 2% of entries flipped: each explains most of the other.
  copy = np.where(rng.uniform(size=len(attributes)) < 0.02, 1 - attributes[:, 0], attributes[:, 0])
  attributes = np.concatenate([attributes, copy[:, None]], axis=1)
  result = tad(z, attributes)
  reduction = result["per_attribute"]["entropy_reduction"]
  assert reduction[0] > 0.2 and reduction[3] > 0.2 and np.all(reduction[1:3] < 0.05)
  assert result["attrs"] == 2
  np.testing.assert_array_equal(result["per_attribute"]["captured"], [False, True, True, False])


def test_entropy_reduction_known_values():
  attributes = np.array([[0, 0, 1], [0, 0, 0], [1, 1, 1], [1, 1, 0]])
  # Attribute 0 == attribute 1 (fully explained), attribute 2 is independent of both.
  np.testing.assert_allclose(entropy_reduction(attributes), [1.0, 1.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(entropy_reduction(attributes[:, :1]), [0.0])


def test_detector_aurocs_match_sklearn_with_ties():
  rng = _rng(8)
  attributes = rng.integers(0, 2, size=(200, 3))
  z = np.round(attributes[:, :1] + rng.normal(size=(200, 4)))  # integer-valued: many ties
  aurocs = detector_aurocs(z, attributes)
  for a in range(3):
    for d in range(4):
      auc = roc_auc_score(attributes[:, a], z[:, d])
      assert aurocs[a, d] == pytest.approx(max(auc, 1.0 - auc), abs=1e-12)


def test_tad_cv_reports_folds():
  z, attributes, _ = _attribute_codes(n=500, num_attributes=3)
  result = tad_cv(z, attributes, n_folds=5, seed=0)
  assert result["n_folds"] == 5 and len(result["per_fold"]) == 5
  assert result["attrs_mean"] == 3.0 and result["attrs_std"] == 0.0
  tads = [fold["tad"] for fold in result["per_fold"]]
  assert result["tad_mean"] == pytest.approx(np.mean(tads))
  assert result["tad_std"] == pytest.approx(np.std(tads)) and result["tad_std"] > 0.0
  assert tad_cv(z, attributes, n_folds=5, seed=0) == result


_A = np.stack([np.arange(20) % 2, np.arange(20) // 10], axis=1)  # valid: both attributes vary


@pytest.mark.parametrize(
  ("z", "attributes", "kwargs", "match"),
  [
    (np.zeros(20), _A, {}, "z must be 2-D"),
    (np.zeros((20, 1)), _A, {}, "z must have at least 2 latent"),
    (np.full((20, 2), np.inf), _A, {}, "z contains 40 non-finite"),
    (np.zeros((19, 2)), _A, {}, "z: 19, attributes: 20"),
    (np.zeros((20, 2)), _A.astype(float), {}, "attributes must hold integer"),
    (np.zeros((20, 2)), 2 * _A - 1, {}, r"\(a \+ 1\) // 2"),
    (np.zeros((20, 2)), _A[:, 0], {}, "attributes must be 2-D"),
    (np.zeros((20, 2)), np.c_[_A[:, 0], 0 * _A[:, 1]], {}, r"attributes\[:, 1\] has 0 positive"),
    (np.zeros((20, 2)), _A, {"auroc_threshold": 0.4}, "auroc_threshold must be in"),
    (np.zeros((20, 2)), _A, {"entropy_threshold": 1.5}, "entropy_threshold must be in"),
  ],
)
def test_tad_validation(z, attributes, kwargs, match):
  tad(np.arange(40.0).reshape(20, 2), _A)  # the unmodified inputs are valid
  with pytest.raises(ValueError, match=match):
    tad(z, attributes, **kwargs)


def test_tad_cv_validation():
  with pytest.raises(ValueError, match="n_folds must be"):
    tad_cv(np.zeros((20, 2)), _A, n_folds=1)
  with pytest.raises(ValueError, match="z: 20, attributes: 19"):
    tad_cv(np.zeros((20, 2)), _A[:19])


def _dependent_attributes(n: int = 300, seed: int = 11) -> np.ndarray:
  """Unbalanced binary attributes, some depending on others (every pair's MI differs)."""
  rng = _rng(seed)
  a = rng.uniform(size=n) < 0.3
  b = np.where(rng.uniform(size=n) < 0.15, ~a, a)  # a noisy copy of a
  c = rng.uniform(size=n) < 0.6
  d = (a & c) | (rng.uniform(size=n) < 0.1)
  return np.stack([a, b, c, d], axis=1).astype(np.int64)


def test_entropy_reduction_equals_brute_force_mutual_information():
  """max_{b != a} MI(a, b) / H(a), with sklearn's mutual_info_score and scipy's entropy."""
  from scipy.stats import entropy
  from sklearn.metrics import mutual_info_score

  attributes = _dependent_attributes()
  num = attributes.shape[1]
  expected = [
    max(mutual_info_score(attributes[:, a], attributes[:, b]) for b in range(num) if b != a)
    / entropy(np.bincount(attributes[:, a]))
    for a in range(num)
  ]
  np.testing.assert_allclose(entropy_reduction(attributes), expected, rtol=1e-10)


def test_entropy_reduction_of_nested_attributes_is_exact_and_silent():
  """a = 1 implies b = 1: the empty joint cell adds 0 log 0 = 0, with no numpy warning."""
  import warnings

  attributes = np.array([[0, 0], [0, 1], [1, 1], [0, 0]])
  mi = (
    0.25 * np.log(0.25 / (0.25 * 0.5))
    + 0.5 * np.log(0.5 / (0.75 * 0.5))
    + 0.25 * np.log(0.25 / (0.75 * 0.5))
  )  # cells (1, 1), (0, 0), (0, 1)
  entropies = [-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), np.log(2)]
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    reduction = entropy_reduction(attributes)
  np.testing.assert_allclose(reduction, [mi / entropies[0], mi / entropies[1]], rtol=1e-12)


def _brute_force_tad(z, attributes, auroc_threshold, entropy_threshold):
  aurocs = np.array(
    [[max(roc_auc_score(y, d), 1 - roc_auc_score(y, d)) for d in z.T] for y in attributes.T]
  )
  ordered = np.sort(aurocs, axis=1)
  best, difference = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
  captured = (best >= auroc_threshold) & (entropy_reduction(attributes) <= entropy_threshold)
  return difference, captured


def test_tad_equals_a_brute_force_computation_at_its_thresholds():
  """Per attribute: best AUROC minus the second best, captured at exactly the thresholds."""
  attributes = _dependent_attributes()
  rng = _rng(12)
  z = np.concatenate(
    [
      attributes * rng.uniform(0.2, 1.0, size=4) + rng.normal(size=(300, 4)),
      rng.normal(size=(300, 2)),
    ],
    axis=1,
  )
  best = np.max(detector_aurocs(z, attributes), axis=1)
  reduction = entropy_reduction(attributes)
  # Thresholds equal to attribute 2's own values: it is captured only if both tests are inclusive.
  thresholds = {"auroc_threshold": float(best[2]), "entropy_threshold": float(reduction[2])}
  difference, captured = _brute_force_tad(z, attributes, **thresholds)
  result = tad(z, attributes, **thresholds)
  assert captured[2] and not captured.all()
  np.testing.assert_allclose(result["per_attribute"]["auroc_difference"], difference, atol=1e-12)
  np.testing.assert_array_equal(result["per_attribute"]["captured"], captured)
  assert result["tad"] == pytest.approx(difference[captured].sum(), abs=1e-12)
  assert result["attrs"] == captured.sum()


@pytest.mark.parametrize(
  "name, inside, outside",
  [
    ("auroc_threshold", (0.5, 1.0), (0.4999, 1.0001, 1.5)),
    ("entropy_threshold", (0.0, 1.0), (-0.0001, 1.0001)),
  ],
)
def test_tad_thresholds_are_closed_intervals(name, inside, outside):
  z, attributes, _ = _attribute_codes(n=100, num_attributes=2)
  for value in inside:
    assert tad(z, attributes, **{name: value})["attrs"] >= 0
  for value in outside:
    with pytest.raises(ValueError, match=rf"^{name} must be in"):
      tad(z, attributes, **{name: value})


def test_tad_cv_is_tad_on_each_folds_training_part():
  """Explicit KFold(n_folds, shuffle=True, random_state=seed) splits; thresholds passed on."""
  from sklearn.model_selection import KFold

  attributes = _dependent_attributes(n=200)
  z = attributes + 0.8 * _rng(13).normal(size=(200, 4))
  options = {"auroc_threshold": 0.5, "entropy_threshold": 1.0}  # capture every attribute
  result = tad_cv(z, attributes, n_folds=4, seed=3, **options)
  assert result["attrs_mean"] == 4 > tad_cv(z, attributes, n_folds=4, seed=3)["attrs_mean"]
  strict = tad_cv(z, attributes, n_folds=4, seed=3, auroc_threshold=1.0, entropy_threshold=1.0)
  assert strict["attrs_mean"] == 0  # no detector is perfect: the AUROC threshold is passed on
  expected = [
    tad(z[train], attributes[train], **options)
    for train, _ in KFold(4, shuffle=True, random_state=3).split(z)
  ]
  assert result["per_fold"] == [{"tad": e["tad"], "attrs": e["attrs"]} for e in expected]
  assert result["attrs_mean"] == np.mean([e["attrs"] for e in expected])
  assert result["attrs_std"] == pytest.approx(np.std([e["attrs"] for e in expected]))
  assert result["sklearn_version"] == sklearn.__version__
  # The documented defaults: InfoDiffusion's 5 folds of seed 0 and NashAE's thresholds.
  default = tad_cv(z, attributes)
  assert default == tad_cv(
    z, attributes, n_folds=5, seed=0, auroc_threshold=0.75, entropy_threshold=0.2
  )
  assert default != tad_cv(z, attributes, n_folds=5, seed=1)


def test_dci_cv_is_dci_on_each_fold_with_its_settings_passed_on():
  from sklearn.model_selection import KFold

  factors, rng = _factor_codes(n=120, num_factors=2)
  z = factors + 0.6 * rng.normal(size=factors.shape)
  options = {"num_bins": 4, "n_estimators": 3}
  result = dci_cv(z, factors, n_folds=3, seed=5, **options)
  expected = [
    dci(z[tr], factors[tr], z[te], factors[te], seed=5, **options)
    for tr, te in KFold(3, shuffle=True, random_state=5).split(z)
  ]
  for got, want in zip(result["per_fold"], expected, strict=True):
    for key in ("disentanglement", "completeness", "informativeness_test"):
      assert got[key] == want[key], key
  per_factor = np.mean([e["informativeness_per_factor"] for e in expected], axis=0)
  np.testing.assert_array_equal(result["informativeness_per_factor_mean"], per_factor)
  assert result["informativeness_per_factor_mean"].shape == (2,)
  assert result["sklearn_version"] == sklearn.__version__


def test_dci_cv_defaults_are_the_documented_protocol():
  """5 folds of seed 0, 20 bins, 100 trees (InfoDiffusion); n_jobs does not change a score."""
  rng = _rng(14)
  factors = rng.uniform(size=(60, 2))  # continuous: binned by num_bins
  z = factors + 0.2 * rng.normal(size=factors.shape)
  default = dci_cv(z, factors)
  explicit = dci_cv(z, factors, n_folds=5, seed=0, num_bins=20, n_estimators=100, n_jobs=2)
  keys = ("disentanglement_mean", "completeness_mean", "informativeness_test_mean")
  assert [default[k] for k in keys] == [explicit[k] for k in keys]
  assert default["n_folds"] == 5
  for other in ({"seed": 1}, {"num_bins": 5}, {"n_estimators": 10}):
    changed = dci_cv(z, factors, **other)
    assert [changed[k] for k in keys] != [default[k] for k in keys], other


def test_one_example_of_each_value_is_enough_for_an_auroc_or_an_entropy():
  attributes = np.c_[_A[:, 0], np.eye(20, dtype=int)[0]]  # attribute 1: a single positive
  z = np.arange(40.0).reshape(20, 2)
  assert detector_aurocs(z, attributes)[1, 0] == 1.0  # the positive has the smallest value
  assert entropy_reduction(attributes).shape == (2,)


@pytest.mark.parametrize(
  "fn, kwargs, bad, match",
  [
    (detector_aurocs, {}, "z", r"^z must be 2-D"),
    (detector_aurocs, {}, "attributes", r"^attributes must be 2-D"),
    (detector_aurocs, {}, "constant", r"^attributes\[:, 1\] has 0 positive .* for an AUROC"),
    (entropy_reduction, {}, "attributes", r"^attributes must be 2-D"),
    (entropy_reduction, {}, "constant", r"^attributes\[:, 1\] has 0 positive .* for an entropy"),
    (tad_cv, {}, "z", r"^z must be 2-D"),
    (tad_cv, {}, "attributes", r"^attributes must be 2-D"),
    (tad_cv, {"seed": -1}, None, r"^seed must be an integer >= 0"),
    (dci_cv, {"seed": -1}, None, r"^seed must be an integer >= 0"),
  ],
)
def test_metric_errors_name_the_argument(fn, kwargs, bad, match):
  z, attributes = np.arange(40.0).reshape(20, 2), _A
  if bad == "z":
    z = z[:, 0]
  elif bad == "attributes":
    attributes = attributes[:, 0]
  elif bad == "constant":
    attributes = np.c_[_A[:, 0], 0 * _A[:, 1]]
  args = (attributes,) if fn is entropy_reduction else (z, attributes)
  with pytest.raises(ValueError, match=match):
    fn(*args, **kwargs)


# ---------------------------------------------------------------- PCA floor


def test_pca_features_of_low_rank_images_preserve_distances():
  rng = _rng(9)
  basis = rng.normal(size=(2, 8 * 8))
  images = (rng.normal(size=(130, 2)) @ basis + 0.5).reshape(130, 8, 8, 1).astype(np.float32)
  train, test = pca_features(images[:100], images[100:], 2, seed=0)
  assert train.shape == (100, 2) and test.shape == (30, 2) and test.dtype == np.float32
  np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-3)
  # Rank-2 data: the 2 components span them, so PCA is an isometry on the test images too.
  flat = images[100:].reshape(30, -1)
  image_distances = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
  feature_distances = np.linalg.norm(test[:, None] - test[None], axis=-1)
  np.testing.assert_allclose(feature_distances, image_distances, rtol=1e-3, atol=1e-3)


def test_pca_features_of_discrete_images_project_their_values():
  """Class indices are used as numbers: the projections onto the top principal axes of the
  training images (numpy's SVD, up to each axis' sign), the same on every call."""
  images = _rng(10).integers(0, 2, size=(60, 6, 6, 1)).astype(np.int32)
  train, test = pca_features(images[:50], images[50:], 4, seed=1)
  flat = images.reshape(60, -1).astype(np.float64)
  mean = flat[:50].mean(axis=0)
  _, _, vt = np.linalg.svd(flat[:50] - mean, full_matrices=False)
  expected = (flat - mean) @ vt[:4].T
  signs = np.sign(np.sum(train * expected[:50], axis=0))
  np.testing.assert_allclose(train, expected[:50] * signs, atol=1e-4)
  np.testing.assert_allclose(test, expected[50:] * signs, atol=1e-4)
  np.testing.assert_array_equal(pca_features(images[:50], images[50:], 4, seed=1)[1], test)


@pytest.mark.parametrize(
  ("x_train", "x_test", "dim", "match"),
  [
    (np.zeros(10), np.zeros((5, 4)), 2, "x_train must have shape"),
    (np.zeros((10, 4)), np.zeros((5, 5)), 2, "same per-example shape"),
    (np.zeros((10, 4)), np.full((5, 4), np.nan), 2, "x_test contains 20 non-finite"),
    (np.zeros((10, 4)), np.zeros((5, 4)), 0, "dim must be an integer >= 1"),
    (np.zeros((10, 4)), np.zeros((5, 4)), 5, r"dim must be <= min\(N_train"),
    (np.zeros((3, 4)), np.zeros((5, 4)), 4, r"= 3, got 4"),
  ],
)
def test_pca_features_validation(x_train, x_test, dim, match):
  with pytest.raises(ValueError, match=match):
    pca_features(x_train, x_test, dim)


# ---------------------------------------------------------------- sample quality


def test_frechet_distance_of_known_gaussian_fits():
  a = _rng(11).normal(size=(500, 3)) @ np.diag([1.0, 2.0, 0.5])
  assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
  shift = np.array([1.0, -2.0, 0.5])
  # Same covariance: only the means differ.
  assert frechet_distance(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)
  # b = 2 a + shift: S_b = 4 S_a, (S_a S_b)^(1/2) = 2 S_a, so the trace term is Tr(S_a).
  b = 2.0 * a + shift
  expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(np.cov(a, rowvar=False))
  assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
  assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-6)


def test_pca_frechet_distance_ranks_samples_by_their_distribution():
  rng = _rng(12)
  basis = rng.normal(size=(4, 8 * 8))
  draw = lambda n, scale: (rng.normal(size=(n, 4)) * scale @ basis).reshape(n, 8, 8, 1)  # noqa: E731
  train, reference = draw(400, 1.0), draw(300, 1.0)
  same = pca_frechet_distance(train, reference, draw(300, 1.0), dim=4)
  wider = pca_frechet_distance(train, reference, draw(300, 2.0), dim=4)
  assert 0.0 <= same < 0.1 * wider
  with pytest.raises(ValueError, match="same per-example shape"):
    pca_frechet_distance(train, reference, np.zeros((10, 8, 8, 2)), dim=4)


@pytest.mark.parametrize(
  ("a", "b", "match"),
  [
    (np.zeros((5, 2)), np.zeros((5, 3)), "same dimension d"),
    (np.zeros((1, 2)), np.zeros((5, 2)), "N >= 2"),
    (np.zeros(5), np.zeros((5, 1)), "must be 2-D"),
    (np.full((5, 2), np.inf), np.zeros((5, 2)), "features_a contains 10 non-finite"),
  ],
)
def test_frechet_distance_validation(a, b, match):
  with pytest.raises(ValueError, match=match):
    frechet_distance(a, b)
