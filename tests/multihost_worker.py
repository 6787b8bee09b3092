"""One process of the two-process multi-host test (run by tests/test_multihost.py).

Usage: python multihost_worker.py PROCESS_ID PORT OUT_PREFIX
"""

import json
import sys

pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]

import jax

# Two processes with two CPU devices each form one four-device mesh, with
# CPU collectives over gloo: the multi-host code path, on one machine.
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", 2)
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=120)

import numpy as np

from ddpg_jax import DDPGConfig
from ddpg_jax.drivers.multi import run_seeds
from ddpg_jax.envs import make

env, params = make("Pendulum-v1")
config = DDPGConfig(total_steps=300, warmup_steps=100, batch_size=32, hidden_sizes=(16, 16),
                    eval_every=100, eval_episodes=2, buffer_size=500)
timed = run_seeds(config, env, params, num_seeds=4)
result = {
    "devices": len(jax.devices()),
    "local_devices": len(jax.local_devices()),
    "eval_returns": np.asarray(timed.output.metrics["eval_returns"]).tolist(),
    "kernel": np.asarray(timed.output.train_state.actor_params["MLP_0"]["Dense_0"]["kernel"]).tolist(),
}
with open(f"{out}.{pid}.json", "w") as f:
    json.dump(result, f)
jax.distributed.shutdown()
