"""A digest of what Python modules do, not how they are commented: the metric code's
fingerprint in the evaluate stage's protocol, so that scores computed by other metric code
are never compared as if they were measured the same way."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, _DOCUMENTED) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(paths: Iterable[str | Path]) -> str:
    """12 hex digits over the code of these Python files: comments, docstrings and layout do
    not count (the files are parsed and written back without them); names, order and logic do."""
    h = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        code = ast.unparse(_without_docstrings(ast.parse(Path(path).read_text(encoding="utf-8"))))
        h.update(Path(path).name.encode() + b"\0" + code.encode() + b"\0")
    return h.hexdigest()[:12]


def modules_digest(modules: Iterable[ModuleType]) -> str:
    """:func:`source_digest` of the loaded modules' source files."""
    return source_digest(m.__file__ for m in modules if getattr(m, "__file__", None) and m.__file__.endswith(".py"))
