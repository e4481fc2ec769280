"""Training of the GAN variants: recipes, losses, data, checkpoints and the loop."""
