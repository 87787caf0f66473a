"""dvc.yaml's generated parts, from the code: ``make deps`` (``python -m dcgan.app.stage_deps --write``).

- Each stage's ``src/`` deps are exactly the modules its ``python -m dcgan.app.stages.X`` imports,
  directly or through other modules, lazy imports included (:func:`closure`). A missing dep means
  ``dvc status`` cannot see an edit that changes the stage's output; an extra one reruns the stage
  (and everything after it) for an edit that cannot change it.
- Each stage's ``params:`` list is the keys its code reads (:func:`params_read`): every
  ``params.<section>.<key>``, and every ``<name>.<key>`` where ``<name>`` was bound to
  ``params.<section>``; a section handed to other code whole (``plan_run(params.train, ...)``)
  is listed whole. A stage that reads the whole of params.yaml (its import closure holds
  :mod:`dcgan.app.params.whole`: validate, report) lists every section of
  :data:`~dcgan.app.params.whole.SECTIONS`. tests/test_stages.py records the keys each stage
  really reads in a run and checks that the list covers them.
- docs/fan_out.md's table: which stages an edit of each module reruns.

``make test`` fails while dvc.yaml or the table differ from what this writes
(tests/test_stage_deps.py). A dev tool: no stage imports it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from pathlib import Path

import yaml

from dcgan.app.params.whole import SECTIONS

REPO = Path(__file__).resolve().parents[3]
WHOLE = "src/dcgan/app/params/whole.py"


def module_file(src: Path, module: str) -> Path | None:
    path = src.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def imported_modules(path: Path, package: str) -> set[str]:
    """Every dcgan module named by an import anywhere in the file (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ..a import b
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return {m for m in found if m.split(".")[0] == "dcgan"}


def closure(src: Path, module: str) -> set[Path]:
    """Files run by ``python -m module``: the module, what it imports, and their packages."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        path = module_file(src, mod)
        if path is None or path in seen:
            continue
        seen.add(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        todo += imported_modules(path, package)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
    return {p for p in seen if not docstring_only(p)}


def docstring_only(path: Path) -> bool:
    """A package __init__ with nothing but a docstring cannot change what a stage does."""
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def source_files(root: Path, dep: str) -> set[Path]:
    """The .py files a dep names: the file itself, or every file below a folder."""
    path = (root / dep).resolve()
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.suffix == ".py" else []
    return {f for f in files if "__pycache__" not in f.parts and not docstring_only(f)}


def check(root: Path) -> tuple[list[str], list[str]]:
    """(missing, extra): 'stage: file' for each imported module not in deps, and for each
    listed source file the stage never imports."""
    src = root / "src"
    missing, extra = [], []
    for name, stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].items():
        modules = re.findall(r"python -m (dcgan[\w.]*)", stage["cmd"])
        if not modules:
            continue
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        listed = set().union(*(source_files(root, d) for d in deps if d.startswith("src/")))
        used = set().union(*(closure(src, m) for m in modules))
        missing += [f"{name}: {f.relative_to(root)}" for f in sorted(used - listed)]
        extra += [f"{name}: {f.relative_to(root)}" for f in sorted(listed - used)]
    return missing, extra


def regenerate(root: Path) -> str:
    """dvc.yaml with each stage's src/ deps rewritten to its import closure (folders already
    listed stay when the stage imports every file under them); the rest of the file is kept."""
    text = (root / "dvc.yaml").read_text()
    src = root / "src"
    stages = yaml.safe_load(text)["stages"]
    for name, stage in stages.items():
        modules = re.findall(r"python -m (dcgan[\w.]*)", stage["cmd"])
        if not modules:
            continue
        used = set().union(*(closure(src, m) for m in modules))
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        folders = [d for d in deps if d.startswith("src/") and (root / d).is_dir() and source_files(root, d) <= used]
        covered = set().union(*(source_files(root, d) for d in folders))
        wanted = sorted([*folders, *(str(f.relative_to(root)) for f in used - covered)])
        start = text.index(f"\n  {name}:\n")
        later = [i for i in (text.find(f"\n  {n}:\n", start + 1) for n in stages) if i > start]
        end = min(later) if later else len(text)
        lines = text[start:end].split("\n")
        src_lines = [i for i, line in enumerate(lines) if re.match(r"\s+- src/", line)]
        indent = re.match(r"(\s+)-", lines[src_lines[0]]).group(1)
        kept = [line for i, line in enumerate(lines) if i not in src_lines[1:]]
        kept[src_lines[0]] = "\n".join(f"{indent}- {w}" for w in wanted)
        if (root / WHOLE) in used:  # it reads every section: its params list is all of them
            kept = _with_params(kept, list(SECTIONS))
        elif len(modules) == 1 and (read := params_read(module_file(src, modules[0]))):
            kept = _with_params(kept, read)
        text = text[:start] + "\n".join(kept) + text[end:]
    return text


def _is_section(node: ast.AST, sections: list[str]) -> str | None:
    """``params.<section>`` -> the section's name."""
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "params"
            and node.attr in sections):
        return node.attr
    return None


def _aliases(tree: ast.Module, sections: list[str]) -> dict[str, str]:
    """Names bound to a section anywhere in the module (``p = params.train``, ``p, ev = params.a, params.b``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = (zip(target.elts, node.value.elts, strict=False)
                     if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) else [(target, node.value)])
            for name, value in pairs:
                if isinstance(name, ast.Name) and (sec := _is_section(value, sections)):
                    out[name.id] = sec
    return out


def params_read(path: Path) -> list[str]:
    """The params keys a stage module reads (``section.key``, or ``section`` where the section
    object is handed to other code, which may read any key), from its code: see the module's doc.
    Empty for a module that declares no ``Reads``."""
    tree = ast.parse(path.read_text())
    reads_cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Reads"), None)
    if reads_cls is None:
        return []
    sections = [n.target.id for n in reads_cls.body if isinstance(n, ast.AnnAssign)]
    aliases = _aliases(tree, sections)
    local = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    keys: set[str] = set()
    whole: set[str] = set()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        sec = _is_section(node, sections) or (aliases.get(node.id) if isinstance(node, ast.Name)
                                              and isinstance(node.ctx, ast.Load) else None)
        if sec is None:
            continue
        up = parents.get(node)
        if isinstance(up, ast.Attribute) and up.value is node:
            keys.add(f"{sec}.{up.attr}")
        elif not (isinstance(up, (ast.Assign, ast.Tuple)) and isinstance(node, ast.Attribute)):
            whole.add(sec)  # handed over (an argument, a return value): any key may be read
    for node in ast.walk(tree):  # ``params`` itself handed to code outside the module: everything
        if isinstance(node, ast.Name) and node.id == "params" and isinstance(node.ctx, ast.Load):
            up = parents.get(node)
            if not isinstance(up, ast.Attribute) and not (isinstance(up, ast.Call) and getattr(up.func, "id", None) in local):
                whole |= set(sections)
    fields = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}
    # only the section's own keys: a name bound to a section in one function may mean another thing elsewhere
    keys = {k for k in keys if k.split(".")[1] in fields[k.split(".")[0]]}
    whole |= {sec for sec in sections if {f"{sec}.{k}" for k in fields[sec]} <= keys}  # every key: the section
    listed = [*whole, *(k for k in keys if k.split(".")[0] not in whole)]
    position = {f"{sec}.{key}": (i, j) for i, sec in enumerate(fields) for j, key in enumerate(["", *fields[sec]])}
    return sorted(listed, key=lambda k: position[k if "." in k else f"{k}."])


def unlisted(reads: set[str], listed: list[str]) -> list[str]:
    """The keys in ``reads`` (``section.key``) that a stage's ``params:`` list does not cover
    (neither the key nor its whole section is listed)."""
    return sorted(k for k in reads if k not in listed and k.split(".")[0] not in listed)


def _with_params(lines: list[str], sections: list[str]) -> list[str]:
    """A stage's lines with its ``params:`` list replaced by ``sections``."""
    head = next(i for i, line in enumerate(lines) if re.fullmatch(r"\s+params:", line))
    indent = re.match(r"(\s+)", lines[head]).group(1) + "  "
    end = head + 1
    while end < len(lines) and re.match(rf"{indent}- ", lines[end]):
        end += 1
    return lines[:head + 1] + [f"{indent}- {name}" for name in sections] + lines[end:]


def fan_out(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """src module -> (the stages whose deps list it: what ``dvc status`` names after an edit, the
    stages after those, which rerun only when an output they read changes)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    order = list(stages)
    outs = {n: {o if isinstance(o, str) else next(iter(o)) for o in st.get("outs", [])} for n, st in stages.items()}
    deps = {n: [d if isinstance(d, str) else next(iter(d)) for d in st.get("deps", [])] for n, st in stages.items()}

    def after(names: set[str]) -> set[str]:
        found, todo = set(), [n for n in names if n != "validate"]  # validate's stamp never changes
        while todo:
            n = todo.pop()
            for m in order:
                if m not in found and m not in names and any(d in outs[n] for d in deps[m]):
                    found.add(m)
                    todo.append(m)
        return found

    table: dict[str, tuple[list[str], list[str]]] = {}
    files = sorted(f for f in (root / "src/dcgan").rglob("*.py") if "__pycache__" not in f.parts and not docstring_only(f))
    listed = {n: set().union(*(source_files(root, d) for d in deps[n] if d.startswith("src/"))) for n in order}
    for f in files:
        direct = {n for n in order if f in listed[n]}
        later = after(direct)
        table[str(f.relative_to(root / "src"))] = ([n for n in order if n in direct], [n for n in order if n in later])
    return table


TABLE_START, TABLE_END = "<!-- fan-out table: make deps -->", "<!-- end of the table -->"


def fan_out_markdown(root: Path) -> str:
    rows = ["| module (under src/) | `dvc status` names | then, only if their outputs change |", "|---|---|---|"]
    for module, (direct, later) in fan_out(root).items():
        rows.append(f"| `{module}` | {', '.join(direct) or '(none: not run by a stage)'} | {', '.join(later) or '-'} |")
    return "\n".join([TABLE_START, *rows, TABLE_END])


def with_table(doc: str, table: str) -> str:
    return doc[:doc.index(TABLE_START)] + table + doc[doc.index(TABLE_END) + len(TABLE_END):]


def main(argv: list[str] | None = None) -> int:
    """``--write``: rewrite dvc.yaml and docs/fan_out.md; ``--check``: exit 1 when either
    differs from what would be written; neither: print the new dvc.yaml."""
    args = sys.argv[1:] if argv is None else argv
    new_yaml = regenerate(REPO)
    doc = REPO / "docs/fan_out.md"
    if "--write" in args:
        (REPO / "dvc.yaml").write_text(new_yaml)
        doc.write_text(with_table(doc.read_text(), fan_out_markdown(REPO)))
        print("dvc.yaml deps and params lists, docs/fan_out.md: written")
    elif "--check" in args:
        stale = [p for p, text in (("dvc.yaml", new_yaml), ("docs/fan_out.md", with_table(doc.read_text(),
                 fan_out_markdown(REPO)))) if (REPO / p).read_text() != text]
        if stale:
            print(f"out of date: {', '.join(stale)}; run: make deps", file=sys.stderr)
            return 1
    else:
        print(new_yaml, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
