"""``fcnn.nn`` builds on the public ``fcnn.functional`` API only: no private name of a functional module is used."""

import ast
import pathlib

import pytest

import fcnn.nn

NN_FILES = sorted(pathlib.Path(fcnn.nn.__file__).parent.glob("*.py"))


def _private_functional_uses(tree: ast.Module) -> list[str]:
    aliases = set()  # names bound to fcnn.functional or one of its modules
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fcnn.functional"):
            for a in node.names:
                if a.name.startswith("_"):
                    uses.append(f"from {node.module} import {a.name}")
                aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "fcnn":
            aliases.update(a.asname or a.name for a in node.names if a.name == "functional")
        elif isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.name.startswith("fcnn.functional") and a.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and isinstance(node.value, ast.Name)
                and node.value.id in aliases):
            uses.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return uses


@pytest.mark.parametrize("path", NN_FILES, ids=lambda p: p.name)
def test_nn_uses_only_public_functional_names(path):
    assert _private_functional_uses(ast.parse(path.read_text())) == []


def test_the_check_sees_a_private_use():
    tree = ast.parse("from fcnn.functional import pool as _P\nfrom fcnn.functional.loss import _x\n_P._max_pool(1)\n")
    assert _private_functional_uses(tree) == ["from fcnn.functional.loss import _x", "_P._max_pool (line 3)"]
