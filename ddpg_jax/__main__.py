"""``python -m ddpg_jax`` runs the ``ddpg-jax`` command."""

from ddpg_jax.cli.main import entry_point

if __name__ == "__main__":
    entry_point()
