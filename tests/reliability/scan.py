"""A precise scan of Python sources for ways input could become code.

Flagged: pickle-family loaders (pickle, cPickle, _pickle, dill, cloudpickle, joblib, shelve,
marshal) imported or called; the builtins eval, exec and compile called by name; yaml.load /
yaml.load_all without a safe Loader, yaml.unsafe_load / full_load; torch.load without
weights_only=True; numpy.load with allow_pickle=True; subprocess calls with shell=True.
Not flagged: methods that merely share a name (``model.eval()``), yaml.safe_load,
torch.load(..., weights_only=True), numpy.load without allow_pickle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
BUILTINS = {"eval", "exec", "compile"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
UNSAFE_YAML = {"yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"}
SUBPROCESS_CALLS = {"run", "call", "check_call", "check_output", "Popen", "getoutput", "getstatusoutput"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for a Name/Attribute chain, '' otherwise."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        # local name -> module it stands for (import x as y, from x import y)
        self.aliases: dict[str, str] = {}

    def _flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            root = alias.name.split(".")[0]
            self.aliases[alias.asname or root] = alias.name if alias.asname else root
            if root in PICKLE_MODULES:
                self._flag(node, f"imports {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        root = module.split(".")[0]
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            if root in PICKLE_MODULES:
                self._flag(node, f"imports {alias.name} from {module}")

    def _resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        target = self.aliases.get(head, head)
        return f"{target}.{rest}" if rest else target

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        dotted = _dotted(node.func)
        if not dotted:
            return
        if isinstance(node.func, ast.Name) and node.func.id in BUILTINS and node.func.id not in self.aliases:
            self._flag(node, f"calls the builtin {node.func.id}()")
            return
        name = self._resolve(dotted)
        module, _, function = name.rpartition(".")
        root = module.split(".")[0]
        if root in PICKLE_MODULES or name in UNSAFE_YAML:
            self._flag(node, f"calls {name}()")
        elif name in {"yaml.load", "yaml.load_all"}:
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
                self._flag(node, f"calls {name}() without a safe Loader")
        elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            self._flag(node, "calls torch.load() without weights_only=True")
        elif name in {"numpy.load", "np.load"} and _is_true(_keyword(node, "allow_pickle")):
            self._flag(node, f"calls {name}(allow_pickle=True)")
        elif root == "subprocess" and function in SUBPROCESS_CALLS and _is_true(_keyword(node, "shell")):
            self._flag(node, f"calls {name}(shell=True)")
        elif root == "subprocess" and function in {"getoutput", "getstatusoutput"}:
            self._flag(node, f"calls {name}() (always a shell)")
        elif name in {"os.system", "os.popen"}:
            self._flag(node, f"calls {name}()")


def scan_source(source: str, path: str = "<source>") -> list[Finding]:
    visitor = _Visitor(path)
    visitor.visit(ast.parse(source, filename=path))
    return visitor.findings


def scan_tree(root: Path) -> tuple[int, list[Finding]]:
    """(files scanned, findings) for every .py file under root, generated code included."""
    findings: list[Finding] = []
    files = sorted(root.rglob("*.py"))
    for path in files:
        findings += scan_source(path.read_text(), str(path.relative_to(root.parent)))
    return len(files), findings
