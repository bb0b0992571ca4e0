"""Shared base configuration: every dataset config starts here and overrides what differs.

Sections (each becomes a frozen dataclass in `paramrel_jax.config.configuration`):
  data      where images (or a table's records) come from and how they are preprocessed;
  flow      the Bayesian flow (data type, sigma1 / beta1, bins, loss steps);
  model     the self-encoder and the output network (a named size plus latent settings);
  objective weights of the ParamReL terms (paper Eq. 6);
  training  optimiser, schedule, batch, steps, logging and checkpoint cadence;
  sampling  generation settings (paper Eq. 4);
  eval      evaluation sizes (split: data.eval_split); `evals`: evaluators run in training.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # persistent XLA compilation cache: 'user' (~/.cache/paramrel_jax/xla, shared by runs) |
  # 'workdir' (WORKDIR/compile_cache) | 'off' | a directory
  # (see paramrel_jax.training.compile_cache)
  config.compile_cache = "user"

  config.data = ml_collections.ConfigDict()
  config.data.name = "shapes2d"  # generated / TFDS dataset name (see paramrel_jax.data)
  config.data.source = "generated"  # 'generated' | 'tfds' | 'npz' | 'csv' (tables)
  config.data.path = ""  # .npz file for source='npz'; .csv / .parquet table for source='csv'
  config.data.columns = ""  # source='csv': 'name:kind,...' overrides of the inferred kinds
  config.data.label = ""  # source='csv': a column kept out of the model, the probes' label
  config.data.scaling = "range"  # source='csv': continuous columns to [-1, 1]: range | quantile
  config.data.data_dir = ""  # TFDS data_dir for source='tfds' ('' = TFDS default)
  config.data.download = True  # source='tfds': prepare a missing dataset on first use
  config.data.image_size = 28  # H = W of the images fed to the model
  # 'auto': from flow.data_type ('threshold' for discrete data, 'none' otherwise) | 'threshold'
  # | 'bernoulli' (discrete data) | 'none' (continuous, discretised and mixed data)
  config.data.binarize = "auto"
  config.data.threshold = 127  # 'threshold' binarisation: pixel > threshold -> 1
  config.data.num_examples = 20_000  # size of generated datasets
  config.data.test_fraction = 0.1  # held-out fraction for npz / generated sources
  config.data.train_split = "train"
  config.data.eval_split = "test"
  # 'auto' (in memory where the split fits, else grain) | 'grain' | 'memory'
  config.data.loader = "auto"
  config.data.num_workers = -1  # grain workers (-1: all cores but one, at most 16; 0: none)
  config.data.prefetch = 2  # batches prefetched to the device

  config.flow = ml_collections.ConfigDict()
  config.flow.data_type = "discrete"  # 'continuous' | 'discretised' | 'discrete'
  config.flow.sigma1 = 0.001  # continuous / discretised: final std of the input distribution
  # discrete: final accuracy beta(1) = max_sqrt_beta**2 of the official BFN code; its binarised
  # MNIST config (mnist_discrete.yaml) has max_sqrt_beta = 3, i.e. beta(1) = 9
  config.flow.beta1 = 9.0
  config.flow.num_bins = 256  # discretised: K bins on [-1, 1]
  config.flow.num_classes = 2  # discrete: K classes
  config.flow.loss_steps = 0  # 0: continuous-time loss; n > 0: n-step discrete-time loss
  config.flow.loss_samples = 1  # Monte-Carlo sender samples for the discrete-time loss

  config.model = ml_collections.ConfigDict()
  # "paramrel" or a baseline: ae, vae, beta_vae, infovae, diffae, infodiffusion
  config.model.kind = "paramrel"
  config.model.beta = 4.0  # beta-VAE: KL weight
  config.model.diffusion_steps = 1000  # DiffAE / InfoDiffusion: DDPM steps T
  config.model.size = "tiny"  # named variant of paramrel_jax.config.network
  config.model.latent_dim = 32  # 0 = no self-encoder (plain BFN)
  config.model.encoder = "progressive"  # 'progressive' (q(z | e, t)) | 'vanilla' (q(z | e))
  # e, what the encoder reads: 'data' (x) | 'final_params' (theta_1 ~ p_F(. | x; 1)) | 'theta_t'
  # (the output network's own input, paper Eq. 3 literally; runs saved without this key used it)
  config.model.encoder_input = "data"
  # how z enters the output network's AdaGN: 'paper' (Eq. 12) | 'diffae' (scale after the norm)
  config.model.adagn = "paper"
  # how z enters the output network: 'adagn' (every unit scales every channel, Eq. 11-12, plus
  # latent_map) | 'cross_attention' (one token per latent_group_size units, read by
  # cross-attention after every res block, and nowhere else) | 'content_mask' (each token's
  # content placed by its own mask, a map added to every res block's input, and nowhere else)
  config.model.conditioning = "adagn"
  config.model.latent_group_size = 1
  config.model.mask_temperature = 1.0  # 'content_mask': softmax temperature of the masks
  # how the self-encoder pools its last feature map: 'mean' | 'flatten' | 'attention'
  config.model.encoder_pool = "mean"
  config.model.encoder_coords = False  # coordinate channels on the encoder's input
  # initial log-variance of q(z_t | e, t): -6 starts z nearly deterministic, so it carries the
  # data from the first step (0, the prior's variance, leaves z empty until training shrinks it)
  config.model.posterior_logvar_init = -6.0
  # also a linear map of z into the output network's bottleneck features: a spatial path for z
  config.model.latent_map = True
  config.model.dropout = 0.0
  config.model.fourier_features = False  # add Fourier features of the input mean (continuous)
  config.model.predict_std = False  # discretised: also predict a log-std (official CIFAR setting)
  config.model.dtype = "float32"  # 'float32' | 'bfloat16' (compute dtype; params stay float32)
  config.model.remat = False  # rematerialise U-Net blocks to save memory

  config.objective = ml_collections.ConfigDict()
  config.objective.kl_weight = 1e-3  # (1 - gamma): weight of KL[q(z_t | e, t) || N(0, I)]
  # (gamma + lambda - 1): weight of MMD(q(z) || N(0, I)), per data dimension (mmd_scale)
  config.objective.mmd_weight = 1e-4
  config.objective.mmd_kernel = "imq"  # 'rbf' | 'imq'
  # weight of the batch's total correlation TC[q(z)] (beta-TCVAE's, not the paper's; 0: none)
  config.objective.tc_weight = 0.0
  # weight of L^inf at prior_recon_time with theta_t -> theta_0: the output network as a decoder
  # of z alone (0: none; not the paper's)
  config.objective.prior_recon_weight = 0.0
  config.objective.prior_recon_time = 0.05
  # 'data_dims': the MMD term is mmd_weight * (H * W * C) * MMD | 'none': mmd_weight * MMD
  config.objective.mmd_scale = "data_dims"
  # the encoder's gradient: 'elbo' (the BFN term's) | 'flat' (every flow time at equal weight)
  # 'flat_both': the BFN term at equal weight for every t, for both networks (not the ELBO)
  config.objective.latent_weighting = "flat_both"
  # 'gaussian' (z_t ~ q(z_t | e, t)) | 'deterministic' (z_t = its mean, no rate: MMD-only variant)
  config.objective.posterior = "gaussian"
  # training times t = u ** time_power, u ~ U[0, 1): 1 is the BFN's uniform t; 2 draws the early
  # times, where z must carry the global content, more often (experiments/README.md)
  config.objective.time_power = 2.0
  # 'iid' | 'stratified': a batch's u one per stratum of [0, 1) (VDM's low-discrepancy times)
  config.objective.time_sampling = "iid"
  # tables: each cell of a training record hidden from the self-encoder with this probability
  # (z learns to describe a record from part of it, as imputation asks; 0: none)
  config.objective.encoder_mask = 0.0

  config.training = ml_collections.ConfigDict()
  config.training.batch_size = 64  # global batch, split over all devices
  config.training.num_steps = 1000
  config.training.learning_rate = 1e-4
  config.training.warmup_steps = 100
  config.training.lr_schedule = "constant"  # 'constant' | 'cosine' (after warm-up)
  config.training.weight_decay = 0.0
  config.training.grad_clip = 1.0
  config.training.adam_b1 = 0.9
  config.training.adam_b2 = 0.99
  config.training.ema_decay = 0.999
  config.training.log_every = 50
  config.training.checkpoint_every = 500
  config.training.keep_checkpoints = 3

  config.sampling = ml_collections.ConfigDict()
  config.sampling.num_steps = 100
  config.sampling.num_samples = 64
  config.sampling.z_source = "prior"  # 'prior' | 'encoder' (q(z_t | theta_t, t); theta_t input)
  # the prior's z: 'fitted', N(mean, cov) of the codes of the first prior_examples training
  # images, fitted after training (a progressive encoder's: the paths of codes at prior_times
  # times in [0, 1]) | 'standard', N(0, I) (README, "Prior samples")
  config.sampling.z_prior = "fitted"
  config.sampling.prior_examples = 2000
  config.sampling.prior_times = 11
  config.sampling.num_variations = 7  # conditional generation: samples per input
  config.sampling.z_times = (0.1, 0.2, 0.3)  # time-varying reconstruction (progressive encoder)
  config.sampling.interpolation_points = 8
  config.sampling.interpolation_method = "slerp"  # 'lerp' | 'slerp' (App. E, Eq. 13)
  config.sampling.traverse_steps = 7  # latent traversal: values per dimension
  config.sampling.traverse_range = 3.0  # ... over [-range, range]
  # --mode=train also writes samples at the end (models with a prior)
  config.sampling.after_training = False

  config.eval = ml_collections.ConfigDict()
  config.eval.num_examples = 256
  config.eval.batch_size = 64
  config.eval.loss_steps = 0  # like flow.loss_steps, for the likelihood evaluator
  config.eval.n_repeats = 1
  config.eval.latent_time = 1.0  # exported z: encoder mean at this flow time (1 = data end)
  config.eval.latent_times = ()  # further times exported as z_t<time>

  config.evals = ml_collections.ConfigDict()  # name -> evaluator settings (evaluation issue)

  config.distributed = ml_collections.ConfigDict()
  config.distributed.initialize = False  # call jax.distributed.initialize() (multi-host)
  config.distributed.coordinator_address = ""  # 'host:port' of process 0 ('' = auto-detect)
  config.distributed.num_processes = 0  # 0 = auto-detect
  config.distributed.process_id = -1  # -1 = auto-detect
  return config
