"""The ``ddpg-jax`` command: parsing and dispatch, config files, sweeps and run directories."""
