"""What the command lines of ``pretrain``, ``finetune`` and ``glue_eval`` share: the parser and its
help layout, the recipe options (``--config``, ``--print-config``, ``key=value`` overrides) and the
activation plug-in options (``--import``, ``--list-activations``)."""

from __future__ import annotations

import argparse

from bert_helu.runtime.config import recipe_yaml

# Descriptions and epilogs are laid out by hand (example commands, paragraphs): argparse keeps them.
HELP_FORMAT = argparse.RawDescriptionHelpFormatter


def program_parser(prog: str, description: str, epilog: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HELP_FORMAT
    )


def add_config_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--config", metavar="YAML", help=help)


def add_print_config_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--print-config", action="store_true", help=help)


def add_plugin_and_override_arguments(parser: argparse.ArgumentParser, overrides_help: str) -> None:
    """``--import``, ``--list-activations`` and the ``key=value`` recipe overrides, the last options."""
    from bert_helu.activations.plugins import add_import_argument, add_list_argument

    add_import_argument(parser)
    add_list_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)


def listed_activations(args: argparse.Namespace) -> bool:
    """Import ``--import``'s modules (before anything reads an activation name); with
    ``--list-activations``, print every registered activation. True when that was all to do."""
    from bert_helu.activations.plugins import activations_table, import_modules

    import_modules(args.imports)
    if args.list_activations:
        print(activations_table())
    return args.list_activations


def print_resolved_recipe(cfg, config_path) -> None:
    """``--print-config``: the resolved recipe as YAML that ``--config`` reads back."""
    print(recipe_yaml(cfg, f"defaults <- {config_path or '(no --config)'} <- command line"), end="")
