"""Training: the typed training config, the one training step (:mod:`crossrank.train.step`),
the loop over epochs with validation, early stopping and checkpoints (:mod:`crossrank.train.loop`),
its in-memory source, optimizers, metrics and the throughput benchmark."""
