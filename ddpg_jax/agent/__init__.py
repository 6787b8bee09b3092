"""Everything that runs under ``jit``: the pytrees, networks, losses, gradient step, noise,
normalisation, replay buffer, n-step returns, non-finite guard, and the learner built from them."""
