"""Run plumbing that every program shares, so that each rule exists once: user errors as one line
(``errors``), writes that complete or leave nothing and one writer at a time (``atomic``, ``locks``,
``storage``), recipes from YAML and ``dotted.key=value`` overrides (``config``, and the reference page
``config_reference``), what makes two runs the same run and how files are hashed and named
(``identity``, ``hashing``, ``paths``, ``named_checkpoints``), the machine's precision (``precision``),
the decisions data-parallel processes take together (``agreement``) and experiment trackers."""

from bert_helu.runtime.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__, errors="UserError cli_entry", atomic="atomic_write_json atomic_write_text"
)
