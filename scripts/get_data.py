"""Build the data layout the recipes and tests read (GLUE TSVs, Wikipedia and BookCorpus shards) from
the Hugging Face hub, on any machine where the hub is reachable.

    python scripts/get_data.py                                   # everything into ../shared/data
    python scripts/get_data.py --parts glue                      # GLUE only
    python scripts/get_data.py --max-articles 100000 --max-book-sentences 2000000   # a slice of the corpora
    python scripts/get_data.py --out /data/bert-helu             # elsewhere; then point the recipes there

The default --out is ../shared/data next to this clone: where configs/pretrain/cpu-tiny.yaml reads the
corpus, where the tests look, and what the README's commands pass to --glue-dir.

The corpora are large: wikimedia/wikipedia 20231101.en has 6.4M articles (written as gzipped shards of
25,000) and bookcorpus/bookcorpus 74M sentences (shards of 1M); --max-articles and --max-book-sentences
take a slice. Both are streamed, so nothing but the shards lands on disk.

Resumable: every file is written atomically and a finished file is never redone, so run the same
command again after an interruption. Every file's size and sha256 is printed and kept in
<out>/SHA256SUMS (check with: cd <out> && sha256sum -c SHA256SUMS). Offline, or where the hub is
unreachable, it stops within seconds with one line saying what it needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_helu.data.fetch import (  # noqa: E402
    BOOKCORPUS,
    GLUE_CONFIGS,
    HUB_DATASET,
    WIKIPEDIA,
    Checksums,
    Report,
    books_corpus,
    hub_glue,
    hub_stream,
    require_hub,
    wikipedia_corpus,
    write_corpus,
    write_glue,
)
from bert_helu.runtime.errors import cli_entry  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "shared" / "data"
PARTS = ("glue", "wikipedia", "books")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python scripts/get_data.py",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where to build it (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to build (default: all three)"
    )
    parser.add_argument(
        "--glue-tasks",
        default=",".join(GLUE_CONFIGS),
        help="nyu-mll/glue configurations, comma-separated (default: all nine tasks, and ax: the "
        "diagnostic set)",
    )
    parser.add_argument(
        "--wikipedia-config",
        default="20231101.en",
        help="the wikimedia/wikipedia dump to use (default: 20231101.en)",
    )
    parser.add_argument(
        "--max-articles", type=int, help="stop after this many Wikipedia articles (default: all)"
    )
    parser.add_argument(
        "--max-book-sentences", type=int, help="stop after this many BookCorpus sentences (default: all)"
    )
    parser.add_argument(
        "--shard-articles", type=int, default=25_000, help="articles per Wikipedia shard (default: 25000)"
    )
    parser.add_argument(
        "--shard-sentences", type=int, default=1_000_000, help="sentences per book shard (default: 1000000)"
    )
    parser.add_argument(
        "--paragraph-sentences",
        type=int,
        default=20,
        help="BookCorpus sentences per paragraph, i.e. per document when a recipe reads the books with "
        "split_documents: paragraph (default: 20)",
    )
    args = parser.parse_args(argv)
    unknown = [c for c in args.glue_tasks.split(",") if c not in GLUE_CONFIGS]
    if unknown:
        parser.error(f"--glue-tasks: unknown {', '.join(unknown)} (known: {', '.join(GLUE_CONFIGS)})")
    for name in (
        "max_articles",
        "max_book_sentences",
        "shard_articles",
        "shard_sentences",
        "paragraph_sentences",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    repos = {"glue": HUB_DATASET, "wikipedia": WIKIPEDIA, "books": BOOKCORPUS}
    require_hub([repos[part] for part in args.parts])  # offline: one line within seconds, nothing written
    root = args.out.resolve()
    sums, report = Checksums(root), Report(say=lambda line: print(line, flush=True))
    print(f"building {', '.join(args.parts)} in {root}")
    if "glue" in args.parts:
        write_glue(root, args.glue_tasks.split(","), hub_glue, report, sums)
    if "wikipedia" in args.parts:
        corpus = wikipedia_corpus(args.wikipedia_config, args.shard_articles)
        write_corpus(
            root, corpus, hub_stream(WIKIPEDIA, args.wikipedia_config), args.max_articles, report, sums
        )
    if "books" in args.parts:
        corpus = books_corpus(args.shard_sentences, args.paragraph_sentences)
        write_corpus(root, corpus, hub_stream(BOOKCORPUS, None), args.max_book_sentences, report, sums)
    print(f"done: {report.written} files written, {report.skipped} already there; checksums in {sums.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
