"""Every SQL statement of the package is parameterised: values are bound, never spliced in.

An AST scan of fraud-pipeline/src: whatever reaches a database call (`execute`, `executemany`,
`execute_values`, `copy_expert`, `mogrify`, `exec_driver_sql`, SQLAlchemy `text`, or a function
of ours that hands its argument to one of them) must be built only from string literals,
constants (ALL_CAPS names whose own value passes the same test), psycopg2.sql composables
(`sql.SQL`, `sql.Identifier`, `sql.Literal`: quoted by psycopg2) or local names bound to those.
An f-string, `%` or `+` that brings in anything else is reported with its file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from fraud_pipeline.config import PACKAGE_ROOT

SOURCES = PACKAGE_ROOT / "src" / "fraud_pipeline"
SINK_METHODS = {"execute", "executemany", "mogrify", "copy_expert", "exec_driver_sql"}
SINK_FUNCTIONS = {"execute_values": 1, "execute_batch": 1, "text": 0, "read_sql": 0}
COMPOSABLES = {"SQL", "Identifier", "Literal", "Placeholder", "Composed"}
# Statements that are code of this repository, not text built at run time.
TRUSTED_ATTRIBUTES = {"migration.sql": "the SQL files of sql/migrations, applied by migrate.py"}


def _is_constant_name(name: str) -> bool:
    return name.lstrip("_").isupper()


@dataclass
class Scan:
    """The package's modules, their module-level constants, and the findings."""

    trees: dict[str, ast.Module]
    constants: dict[str, ast.expr] = field(default_factory=dict)  # NAME -> value
    sinks: dict[str, int] = field(default_factory=lambda: dict(SINK_FUNCTIONS))
    findings: list[str] = field(default_factory=list)
    checked: int = 0  # database calls looked at

    @classmethod
    def of(cls, sources: dict[str, str]) -> Scan:
        scan = cls({name: ast.parse(text) for name, text in sources.items()})
        for tree in scan.trees.values():
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign) and node.value is not None:
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and _is_constant_name(target.id):
                        scan.constants[target.id] = node.value  # type: ignore[assignment]
        scan._find_wrappers()
        return scan

    # -- which of our functions pass a parameter straight into a database call -------------------
    def _find_wrappers(self) -> None:
        changed = True
        while changed:
            changed = False
            for tree in self.trees.values():
                for function in ast.walk(tree):
                    if not isinstance(function, ast.FunctionDef) or function.name in self.sinks:
                        continue
                    params = [a.arg for a in function.args.args]
                    for call in ast.walk(function):
                        argument = self._sql_argument(call)
                        if isinstance(argument, ast.Call) and self._callee(argument) == "text":
                            argument = argument.args[0] if argument.args else None
                        if isinstance(argument, ast.Name) and argument.id in params:
                            self.sinks[function.name] = params.index(argument.id)
                            changed = True
                            break

    @staticmethod
    def _callee(node: ast.Call) -> str:
        func = node.func
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")

    def _sql_argument(self, node: ast.AST) -> ast.expr | None:
        if not isinstance(node, ast.Call):
            return None
        name = self._callee(node)
        if isinstance(node.func, ast.Attribute) and name in SINK_METHODS and node.args:
            return node.args[0]
        position = self.sinks.get(name)
        method = isinstance(node.func, ast.Attribute) and name not in ("execute_values", "read_sql")
        if position is not None and not method and len(node.args) > position:
            return node.args[position]
        return None

    # -- is an expression built only from trusted parts -----------------------------------------
    def trusted(
        self, node: ast.expr, local: dict[str, list[ast.expr]], seen: frozenset[str]
    ) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | int | float | type(None))
        if isinstance(node, ast.Name):
            if node.id in seen:
                return True
            if node.id in local:
                return all(self.trusted(v, local, seen | {node.id}) for v in local[node.id])
            if _is_constant_name(node.id) and node.id in self.constants:
                return self.trusted(self.constants[node.id], {}, seen | {node.id})
            return _is_constant_name(node.id)  # imported from outside the package: a constant
        if isinstance(node, ast.Attribute):
            return ast.unparse(node) in TRUSTED_ATTRIBUTES or _is_constant_name(node.attr)
        if isinstance(node, ast.JoinedStr):
            return all(self.trusted(v, local, seen) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.trusted(node.value, local, seen)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
            return self.trusted(node.left, local, seen) and self.trusted(node.right, local, seen)
        if isinstance(node, ast.Tuple | ast.List):
            return all(self.trusted(e, local, seen) for e in node.elts)
        if isinstance(node, ast.Starred):
            return self.trusted(node.value, local, seen)
        if isinstance(node, ast.Subscript):  # CONSTANT[...] of constants
            return self.trusted(node.value, local, seen)
        if isinstance(node, ast.GeneratorExp | ast.ListComp):
            names = {
                t.id for g in node.generators for t in ast.walk(g.target) if isinstance(t, ast.Name)
            }
            iterables = all(self.trusted(g.iter, local, seen) for g in node.generators)
            return iterables and self.trusted(node.elt, local, seen | names)
        if isinstance(node, ast.Call):
            return self._trusted_call(node, local, seen)
        return False

    def _trusted_call(
        self, node: ast.Call, local: dict[str, list[ast.expr]], seen: frozenset[str]
    ) -> bool:
        func = node.func
        parts = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Attribute):
            owner = ast.unparse(func.value)
            if owner == "sql" and func.attr in COMPOSABLES:
                return True  # psycopg2 quotes identifiers and literals itself
            if func.attr in ("format", "join") and self._composable(func.value, local):
                return all(
                    self._composable(p, local) or self.trusted(p, local, seen) for p in parts
                )
            if func.attr == "join":  # "sep".join(trusted parts)
                return self.trusted(func.value, local, seen) and all(
                    self.trusted(p, local, seen) for p in parts
                )
            if func.attr in ("as_string", "strip", "compile"):  # compile: the same statement
                return self.trusted(func.value, local, seen) or self._composable(func.value, local)
        if getattr(func, "id", "") in ("text", "sorted", "list", "tuple", "str"):
            return all(self.trusted(p, local, seen) for p in parts)
        return self._composable(node, local)

    def _composable(self, node: ast.expr, local: dict[str, list[ast.expr]] | None = None) -> bool:
        """A psycopg2.sql object: sql.X(...), its .format/.join, `+` of those, or a name of one."""
        local = local or {}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if ast.unparse(node.func.value) == "sql" and node.func.attr in COMPOSABLES:
                return True
            if node.func.attr in ("format", "join"):
                return self._composable(node.func.value, local)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "map" and node.args:
            return ast.unparse(node.args[0]) in ("sql.Identifier", "sql.Literal")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self._composable(node.left, local) and self._composable(node.right, local)
        if isinstance(node, ast.Name) and node.id in local:
            return all(self._composable(v, local) for v in local[node.id])
        if isinstance(node, ast.Name) and _is_constant_name(node.id) and node.id in self.constants:
            return self._composable(self.constants[node.id])
        return False

    # -- the scan --------------------------------------------------------------------------------
    def run(self) -> list[str]:
        for module, tree in self.trees.items():
            for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
                local = _assignments(scope)
                if isinstance(scope, ast.FunctionDef) and scope.name in self.sinks:
                    wrapped = scope.args.args[self.sinks[scope.name]].arg
                    local[wrapped] = [ast.Constant("checked where it is called")]
                for node in _own_nodes(scope):
                    argument = self._sql_argument(node)
                    if argument is None:
                        continue
                    self.checked += 1
                    if self._composable(argument, local):
                        continue
                    if not self.trusted(argument, local, frozenset()):
                        self.findings.append(
                            f"{module}:{node.lineno}: {ast.unparse(argument)[:120]}"
                        )
        return sorted(self.findings, key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """Nodes of a module or function, not those of the functions nested in it."""
    nodes, stack = [], list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if isinstance(node, ast.ClassDef):
                stack.extend(n for n in node.body if not isinstance(n, ast.FunctionDef))
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _assignments(scope: ast.AST) -> dict[str, list[ast.expr]]:
    local: dict[str, list[ast.expr]] = {}
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    local.setdefault(target.id, []).append(node.value)
        elif (
            isinstance(node, ast.AnnAssign | ast.AugAssign)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            local.setdefault(node.target.id, []).append(node.value)
    if isinstance(scope, ast.FunctionDef):  # a parameter is whatever the caller passed
        for arg in scope.args.args:
            local.setdefault(arg.arg, []).append(ast.Name(id="<parameter>"))
    return local


def package_sources() -> dict[str, str]:
    return {str(p.relative_to(SOURCES)): p.read_text() for p in sorted(SOURCES.rglob("*.py"))}


def test_every_statement_of_the_package_binds_its_values():
    scan = Scan.of(package_sources())
    assert scan.run() == []
    # The scan did look: it found the database calls, and the report's wrapper around them.
    assert scan.checked > 40 and "_read" in scan.sinks


def test_the_scan_catches_values_spliced_into_sql():
    """The rule can fail: each of these splices a value into a statement."""
    hostile = """
from psycopg2 import sql

TABLE = "payments_scored"

def by_id(cur, trans_num, amount, names):
    cur.execute(f"SELECT * FROM {TABLE} WHERE trans_num = '{trans_num}'")
    cur.execute("DELETE FROM payments_scored WHERE amt > " + str(amount))
    cur.execute("SELECT * FROM payments_scored WHERE trans_num = '%s'" % trans_num)
    query = "SELECT * FROM payments_scored WHERE merchant = '{}'".format(names)
    cur.execute(query)
    _run(cur, "UPDATE payments_scored SET amt = " + amount)

def _run(cur, statement):
    cur.execute(statement)

def fine(cur, trans_num):
    cur.execute(f"SELECT * FROM {TABLE} WHERE trans_num = %s", (trans_num,))
    cur.execute(sql.SQL("SELECT {} FROM t").format(sql.Identifier(trans_num)))
    cur.execute(str(text("SELECT * FROM t WHERE a = :a").compile()), {"a": trans_num})

def spliced_then_compiled(cur, trans_num):
    cur.execute(str(text("SELECT * FROM t WHERE a = " + trans_num).compile()))
"""
    findings = Scan.of({"hostile.py": hostile}).run()
    assert [f.split(":")[1] for f in findings] == ["7", "8", "9", "11", "12", "23", "23"], findings
