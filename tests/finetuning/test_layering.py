"""Dependencies point one way: GLUE (bert_helu.glue) knows nothing of fine-tuning, and the recipe
knows nothing of the run that uses it (a run imports the recipe's defaults, not the reverse)."""

import ast

import pytest
from conftest import REPO

PACKAGE = REPO / "bert_helu"


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # also imports inside functions: they are dependencies too
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "files, forbidden",
    [
        (sorted((PACKAGE / "glue").glob("*.py")), "bert_helu.finetuning"),
        ([PACKAGE / "finetuning" / "recipe.py"], "bert_helu.finetuning.run"),
        ([PACKAGE / "finetuning" / "inputs.py"], "bert_helu.finetuning.run"),
    ],
)
def test_modules_do_not_import_what_depends_on_them(files, forbidden):
    assert files
    offenders = {
        path.relative_to(REPO).as_posix(): sorted(
            m for m in imported_modules(path) if m.startswith(forbidden)
        )
        for path in files
    }
    assert {path: found for path, found in offenders.items() if found} == {}
