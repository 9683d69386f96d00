"""Write docs/config.md (every recipe key with default, type and meaning) from the defaults in the code.

    python scripts/make_config_docs.py           # rewrite docs/config.md
    python scripts/make_config_docs.py --check   # exit 1 if it is out of date or a key lacks a description

Adding a recipe key means adding its one-line description next to its default (``*_KEY_HELP``);
this script refuses to write a page with an undocumented key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_helu.runtime.config_reference import recipes, render, stale, undocumented  # noqa: E402

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="check only; write nothing")
    args = parser.parse_args()
    problems = []
    for recipe in recipes():
        problems += [f"{recipe.program}: key {key!r} has no description" for key in undocumented(recipe)]
        problems += [f"{recipe.program}: description of unknown key {key!r}" for key in stale(recipe)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/make_config_docs.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
