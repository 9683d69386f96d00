"""Turn fine-tuning results and checkpoints into tables, statistics and plots."""
