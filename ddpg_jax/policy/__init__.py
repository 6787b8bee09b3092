"""A trained policy outside training: loading one (checkpoint or exported file), exporting it
with ``jax.export``, and evaluating it."""
