"""Published vocoder checkpoints -> ganpipe generator files (one module per source format)."""
