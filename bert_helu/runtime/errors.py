"""User-facing errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A problem with the user's input (config, data, checkpoint): reported as one line."""


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name when it has none), cut to ``limit``.

    Library errors (transformers, safetensors, datasets) often carry pages of context; one line of
    it is what a user-facing message can hold.
    """
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


def cli_entry(main):
    """Wrap a program's ``main`` so that user errors print one line and exit with status 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper
