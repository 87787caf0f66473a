"""Library: the training loop (loop.train, loop.train_step), the GAN objective, the networks'
optimizers, checkpoints and resume, DDP. Imports networks, data and the ground floor; never
metrics or app (in-training FID comes in as a function)."""
