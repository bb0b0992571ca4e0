"""Binarised MNIST, discrete ParamReL (paper Table 5, column bMNIST).

  python -m paramrel_jax.main --config=configs/bmnist.py --workdir=runs/bmnist

50 epochs of 60,000 images at batch 128 (23,450 steps); the paper trained on one H100 (a few
hours). Expected: latent AUROC on digit labels about 0.98-0.99 (paper Table 2, ParamReLd).
TFDS `mnist` is prepared under --config.data.data_dir on first use (README, "Data"); for
real digits in a local .npz file (as mnist10k, the 10,000 MNIST digits of experiments/README.md)
use
  --config.data.source=npz --config.data.path=MNIST10K.npz
The flow has beta(1) = 9 (base config), the official BFN's binarised-MNIST setting
(`max_sqrt_beta: 3` in its mnist_discrete.yaml, squared); `--config.flow.beta1=3` runs the value
this project used before.
`:smoke` runs 4 steps of a tiny network (seconds on a CPU core).
"""

from paramrel_jax.configs import base, smoke


def get_config(variant: str = ""):
  config = base.get_config()
  config.data.name = "mnist"
  config.data.source = "tfds"
  config.data.image_size = 28
  config.flow.data_type = "discrete"
  config.flow.num_classes = 2
  config.model.size = "paper_mnist"
  config.model.latent_dim = 32
  config.training.batch_size = 128
  config.training.learning_rate = 1e-4
  config.training.num_steps = 50 * 60_000 // 128
  config.training.ema_decay = 0.9999
  config.training.checkpoint_every = 2000
  return smoke.apply_smoke(config) if variant == "smoke" else config
