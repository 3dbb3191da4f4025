"""One trial: the He et al. CIFAR-10 recipe, seeded, resumable, DDP, logged to W&B."""
