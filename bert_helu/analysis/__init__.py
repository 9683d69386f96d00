"""Analysis of trained models: FFN statistics (Figure 2), inference timing (Figures 4 and 5), plots.

Small modules, one concept each: ``inputs`` (checkpoints and texts to feed them), ``ffn_stats``
(statistics over a data set), ``plots`` (PNG figures), ``timing`` (repeatable wall-clock measurement),
``reports`` (JSON + Markdown writing), ``bench_pretrain_page`` and ``bench_gpu_page`` (the pages of
scripts/bench_pretrain.py and scripts/bench_gpu.py), ``pretraining_runs`` (tables of finished runs).
"""
