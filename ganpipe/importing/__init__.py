"""Importers of published vocoder checkpoints into ganpipe generator files (one module per format)."""
