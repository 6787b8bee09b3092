"""Checkpoints: the on-disk format and its verification, the policy record each one carries,
and the checks that open one to resume a run."""
