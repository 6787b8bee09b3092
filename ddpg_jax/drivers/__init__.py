"""The two training drivers over the shared learner, and what they share.

* :mod:`~ddpg_jax.drivers.host`: gymnasium (host) envs, one compiled call per vector step;
* :mod:`~ddpg_jax.drivers.compiled`: ``make_train``, the whole run as one pure program;
* :mod:`~ddpg_jax.drivers.chunked`: the same loop in checkpointable compiled chunks;
* :mod:`~ddpg_jax.drivers.multi`: many seeds and settings in one program;
* :mod:`~ddpg_jax.drivers.sharding`: placing runs on devices and hosts;
* :mod:`~ddpg_jax.drivers.schedule`: evaluation and checkpoint points of both drivers;
* :mod:`~ddpg_jax.drivers.session`: records, logs and checkpoints of both drivers;
* :mod:`~ddpg_jax.drivers.result`: what both drivers return.
"""
