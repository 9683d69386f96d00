"""finetune program (see __main__.py)."""
