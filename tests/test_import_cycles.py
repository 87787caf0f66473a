"""No import circle inside a package of the library: a module's imports (type-hint-only and lazy
ones included) never lead back to it. A circle closed by ``if TYPE_CHECKING`` or by an import
inside a function still means that neither module can be read, or changed, without the other."""

from __future__ import annotations

import pytest

from dcgan.app.stage_deps import imported_modules, module_file
from tests.conftest import REPO

SRC = REPO / "src"


def graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports."""
    mods = {f"{package}.{f.stem}" for f in (SRC / package.replace(".", "/")).glob("*.py") if f.stem != "__init__"}
    edges = {}
    for m in mods:
        found = imported_modules(module_file(SRC, m), m.rpartition(".")[0])
        edges[m] = {x for x in found if x in mods and x != m}
    return edges


def circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


@pytest.mark.parametrize("package", ["dcgan.core", "dcgan.data", "dcgan.networks", "dcgan.training", "dcgan.metrics"])
def test_no_import_circle_in_the_library(package):
    assert circle(graph(package)) is None, " -> ".join(circle(graph(package)))


def test_the_check_finds_a_circle_through_a_type_hint_import():
    assert circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
