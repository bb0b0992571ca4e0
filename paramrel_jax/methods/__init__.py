"""The methods: ParamReL and the baselines behind one interface, and the registry that builds them.

interface   `Model`, the one interface, and the capability check (`FLOW`)
paramrel    ParamReL: model, objective (Eq. 6), sampling (Eq. 4), reverse sampling (Eq. 5)
baselines   AE, VAE, beta-VAE, InfoVAE, DiffAE, InfoDiffusion
registry    every `model.kind` built from its parts or a resolved config
"""
