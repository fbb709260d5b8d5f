"""Training: optimizers, the in-memory loop, and (issue 3) the streaming trainer."""
