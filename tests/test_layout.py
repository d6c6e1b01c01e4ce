"""The layout stays walkable: one package per stage, stages import only the stages above them, no
import cycles, no stage module at the top level, tests that import no other test module nor any
top-level folder a bare ``pytest`` cannot find."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import mmrec

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmrec"

# What may sit at mmrec/'s top level: the public face and the foundation, no pipeline stage.
TOP_LEVEL_MODULES = {"__init__", "_version", "errors", "registry", "cli"}

# The stages in the order data flows; a module may import its own stage and the stages before it.
# Foundation modules (errors, the generic registry, utils) and the pure metric functions (which the
# two-tower model's validation uses while training) may be imported from anywhere.
STAGES = [
    ("_version", "errors", "registry", "utils", "evaluation.metrics"),
    ("data",),
    ("datasets", "features"),
    ("encoders",),
    ("vectors",),
    ("encode",),
    ("index",),
    ("ranking",),  # top-k with the popularity fallback, which every model's recommend() shares
    ("models",),
    ("baselines",),  # content baselines read the index and the ranking's user vectors
    ("evaluation",),  # the Recommender contract, the registry of every model, the harness
    ("serve",),
    ("jobs",),
    ("cli", "testing", ""),  # "" is mmrec/__init__.py, the public face
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*, with_packages: bool = True) -> dict[str, set[str]]:
    """mmrec module → the mmrec modules it imports (anywhere in the file, function bodies too).

    ``with_packages``: importing ``mmrec.a.b`` also runs ``mmrec.a``'s ``__init__`` (the top package
    excepted), an edge for the cycle check; the stage check reads only the modules named."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                if not target.startswith("mmrec"):
                    continue
                resolved = _resolve(target, modules)
                if resolved is None or resolved == name:
                    continue
                graph[name].add(resolved)
                if with_packages:  # the packages on the way run their __init__ first
                    parts = resolved.split(".")
                    graph[name].update(
                        step for i in range(2, len(parts)) if (step := ".".join(parts[:i])) in modules
                        and step != name and not name.startswith(step + "."))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _stage_rank(module: str) -> int:
    inner = module.split(".", 1)[1] if "." in module else ""
    best = None
    for rank, names in enumerate(STAGES):
        for stage in names:
            if inner == stage or (stage and inner.startswith(stage + ".")):
                if best is None or len(stage) > best[1]:
                    best = (rank, len(stage))
    assert best is not None, f"{module} belongs to no stage of STAGES; add its package there"
    return best[0]


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_no_stage_module_at_the_top_level():
    flat = {p.stem for p in PACKAGE.glob("*.py")} - TOP_LEVEL_MODULES
    assert not flat, f"stage modules at mmrec/'s top level: {sorted(flat)}; give each a stage package"


def test_stages_import_only_the_stages_above_them():
    backwards = [f"{a} -> {b}" for a, targets in import_graph(with_packages=False).items()
                 for b in sorted(targets)
                 if _stage_rank(b) > _stage_rank(a)]
    assert not backwards, "imports that point back up the pipeline:\n" + "\n".join(backwards)


def test_public_names_do_not_hide_modules():
    """``import mmrec.x`` must give the module ``x``, never a function of the same name."""
    for info in pkgutil.iter_modules(mmrec.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mmrec.{info.name}")
        value = getattr(mmrec, info.name)
        assert value is module, f"mmrec.{info.name} is {value!r}, not the module"


def test_tests_import_no_test_module_and_nothing_a_bare_pytest_cannot_find():
    """Shared helpers live in ``mmrec.testing``. And the ``pytest`` script (unlike ``python -m pytest``
    or ``python -c``) puts no working directory on ``sys.path``: a test importing a top-level folder
    of the repository as a module (``tests.x``, ``benchmarks.y``, ``examples.z``) fails to collect
    there. Checked on the import statements (collecting the suite in a bare ``pytest`` subprocess
    took 19 s of the suite)."""
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "mmrec"}
    offending = []
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offending += [f"{path.name}: {n}" for n in names
                          if n.split(".")[0] in folders | {"conftest"} or n.startswith("test_")]
    assert not offending, f"not importable under a bare pytest (helpers belong in mmrec.testing): {offending}"
    assert {"tests", "benchmarks", "examples"} <= folders  # the check can fail


def test_docs_link_only_to_files_inside_the_repository():
    import re

    broken = []
    for page in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("examples/**/*.md"),
                 *ROOT.glob("benchmarks/*.md")]:
        text = page.read_text("utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path = target.split("#")[0]
            if not path:
                continue
            resolved = (page.parent / path).resolve()
            if "://" in path or not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
        broken += [f"{page.relative_to(ROOT)}: {ref}" for ref in re.findall(r"\.\./shared/\S+", text)]
    assert not broken, broken
