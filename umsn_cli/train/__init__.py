"""Training every part of UMSN: data, stages, the loop, checkpoints and export."""
