"""Two processes joined by jax.distributed train the same runs as one process."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from ddpg_jax import DDPGConfig
from ddpg_jax.drivers.multi import run_seeds
from ddpg_jax.envs import make

WORKER = Path(__file__).with_name("multihost_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_mesh_matches_single_process(tmp_path):
    port, prefix = free_port(), str(tmp_path / "result")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(pid), str(port), prefix],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in (0, 1)]
    try:
        logs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    results = [json.loads(Path(f"{prefix}.{pid}.json").read_text()) for pid in (0, 1)]
    for r in results:
        assert r["devices"] == 4 and r["local_devices"] == 2
    # Both processes see the full gathered result.
    assert results[0]["eval_returns"] == results[1]["eval_returns"]

    env, params = make("Pendulum-v1")
    config = DDPGConfig(total_steps=300, warmup_steps=100, batch_size=32, hidden_sizes=(16, 16),
                        eval_every=100, eval_episodes=2, buffer_size=500)
    single = run_seeds(config, env, params, num_seeds=4).output
    np.testing.assert_allclose(results[0]["eval_returns"],
                               np.asarray(single.metrics["eval_returns"]), rtol=1e-3)
    np.testing.assert_allclose(
        results[0]["kernel"],
        np.asarray(single.train_state.actor_params["MLP_0"]["Dense_0"]["kernel"]),
        rtol=1e-3, atol=1e-4)
