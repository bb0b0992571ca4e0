"""ParamReL (paper Sec. 3): the model, its objective, its samplers and its code space.

model              `ParamReL` (an `interface.Model` with the capability `interface.FLOW`)
apply              `net_fns`: the networks closed over their parameters
objective          Eq. 6: the BFN loss with the self-encoder's rate and MMD
likelihood         the BFN test loss and the negative ELBO of a batch
sampling           Eq. 4: n-step generation, z from the prior or the encoder
reverse_sampling   Eq. 5: inputs -> (z, subcodes) -> exact replay; conditional, time-varying
interpolation      paths between codes (App. E) and latent traversal (Sec. 5.2.4)
sampler_cost       one sampling step against its parts; host transfers and recompiles (benchmarks)
"""

from paramrel_jax.methods.paramrel.apply import net_fns
from paramrel_jax.methods.paramrel.model import ParamReL

__all__ = ["ParamReL", "net_fns"]
