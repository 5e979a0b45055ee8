"""One trainer for every family, its config, and checkpoints."""
