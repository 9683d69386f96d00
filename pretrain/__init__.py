"""pretrain program (see __main__.py)."""
