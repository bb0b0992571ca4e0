"""Binarised Fashion-MNIST, discrete ParamReL (paper Table 5, column bFashionMNIST).

  python -m paramrel_jax.main --config=configs/bfashionmnist.py --workdir=runs/bfashionmnist

50 epochs of 60,000 images at batch 128 (23,450 steps) on one H100 in the paper (a few hours).
Expected: latent AUROC on the 10 classes about 0.95 (paper Table 2, ParamReLd).
TFDS `fashion_mnist` is prepared under --config.data.data_dir on first use (README, "Data").
"""

from paramrel_jax.configs import bmnist


def get_config(variant: str = ""):
  config = bmnist.get_config(variant)
  config.data.name = "fashion_mnist"
  return config
