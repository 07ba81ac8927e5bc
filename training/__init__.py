"""Training: data degradation, losses, metrics and the training loop."""
