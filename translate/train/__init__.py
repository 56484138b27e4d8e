"""The adversarial core, the shared training loop, checkpoints and the per-task wiring."""
