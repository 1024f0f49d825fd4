"""Issue 8: every SQL statement in the product is parameterised.

An AST scan of the product code (not tests/): the query argument of every ``execute`` /
``executemany`` / ``mogrify`` / ``Database.fetchone|fetchall|execute`` call (and of
``psycopg2.extras.execute_values|execute_batch``) must be a string
literal, a ``psycopg2.sql`` composition (``sql.SQL(...).format(sql.Identifier(...))``), a
name bound to one of those, or a parameter of a thin wrapper (whose own callers are checked).
f-strings, ``%`` formatting, ``str.format`` and ``+`` on non-literals are refused, and so is
any formatted string anywhere that starts like SQL (building a query in a variable first).
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "tests", "artifacts", "__pycache__", ".git", "out", ".stack"}
QUERY_METHODS = {"execute", "executemany", "mogrify", "fetchone", "fetchall", "copy_expert"}
QUERY_HELPERS = {"execute_values", "execute_batch"}  # psycopg2.extras: (cursor, query, ...)
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|TRUNCATE|GRANT)\b")
# Trusted, reviewed exceptions: (file, function, source of the argument).
ALLOWED = {("worker_utils/db.py", "apply_migrations", "path.read_text()")}  # the committed migration files


def product_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def _is_psycopg_sql(node: ast.AST) -> bool:
    """``sql.SQL(...)``, ``sql.Identifier(...)``, ``sql.Composed(...)`` and their ``.format`` /
    ``.join`` results (psycopg2.sql quotes what it composes)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        if isinstance(f.value, ast.Name) and f.value.id == "sql" and f.attr in (
                "SQL", "Identifier", "Composed", "Literal", "Placeholder"):
            return all(isinstance(a, ast.Constant) for a in node.args) if f.attr == "SQL" else True
        if f.attr in ("format", "join"):
            return _is_psycopg_sql(f.value)
    return False


class _Scope:
    def __init__(self, params: set[str], assigns: dict[str, list[ast.AST]]):
        self.params, self.assigns = params, assigns


def _assignments(body: list[ast.stmt]) -> dict[str, list[ast.AST]]:
    out: dict[str, list[ast.AST]] = {}
    for node in body:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign):
                for t in sub.targets:
                    if isinstance(t, ast.Name):
                        out.setdefault(t.id, []).append(sub.value)
            elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name) and sub.value is not None:
                out.setdefault(sub.target.id, []).append(sub.value)
    return out


def why_unsafe(node: ast.AST, scope: _Scope, module: _Scope, depth: int = 0, whole: bool = True) -> str | None:
    """None when ``node`` (a query argument) is provably not string-formatted SQL.  Only a
    whole argument may be a wrapper's parameter; a part of a ``+`` must be a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return None
    if isinstance(node, ast.JoinedStr):
        return "an f-string"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod):
            return "%-formatting"
        if isinstance(node.op, ast.Add):
            return (why_unsafe(node.left, scope, module, depth, whole=False)
                    or why_unsafe(node.right, scope, module, depth, whole=False))
        return "an expression"
    if _is_psycopg_sql(node):
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return "str.format"
    if isinstance(node, ast.Name) and depth < 5:
        if node.id in scope.params:
            return None if whole else f"concatenation with the parameter {node.id!r}"
        values = scope.assigns.get(node.id) or module.assigns.get(node.id)
        if not values:
            return f"the unresolved name {node.id!r}"
        for v in values:
            why = why_unsafe(v, scope, module, depth + 1, whole)
            if why:
                return why
        return None
    return f"an expression ({ast.unparse(node)})"


def scan(source: str, filename: str = "<src>") -> list[str]:
    tree = ast.parse(source)
    module = _Scope(set(), _assignments([n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]))
    found: list[str] = []

    def visit(node: ast.AST, scope: _Scope, fn: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = child.args
                params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
                visit(child, _Scope(params, _assignments(child.body)), child.name)
                continue
            func = child.func if isinstance(child, ast.Call) else None
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            is_method = isinstance(func, ast.Attribute) and name in QUERY_METHODS and child.args
            is_helper = name in QUERY_HELPERS and len(child.args) >= 2  # execute_values(cur, query, ...)
            if is_method or is_helper:
                arg = child.args[0] if is_method else child.args[1]
                if (filename, fn, ast.unparse(arg)) not in ALLOWED:
                    why = why_unsafe(arg, scope, module)
                    if why:
                        found.append(f"{filename}:{child.lineno} {fn}(): {name}() gets SQL built with {why}")
            if isinstance(child, ast.JoinedStr):
                head = "".join(v.value for v in child.values[:1] if isinstance(v, ast.Constant))
                if SQL_START.match(head):
                    found.append(f"{filename}:{child.lineno} {fn}(): an f-string that starts like SQL")
            if (isinstance(child, ast.BinOp) and isinstance(child.op, ast.Mod) and isinstance(child.left, ast.Constant)
                    and isinstance(child.left.value, str) and SQL_START.match(child.left.value)):
                found.append(f"{filename}:{child.lineno} {fn}(): %-formatting of SQL")
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "format"
                    and isinstance(child.func.value, ast.Constant) and isinstance(child.func.value.value, str)
                    and SQL_START.match(child.func.value.value)):
                found.append(f"{filename}:{child.lineno} {fn}(): str.format of SQL")
            visit(child, scope, fn)

    visit(tree, module, "<module>")
    return found


def test_all_product_sql_is_parameterised():
    problems = [p for path in product_files() for p in scan(path.read_text(), path.relative_to(REPO).as_posix())]
    assert not problems, ("SQL must be parameterised (%s placeholders) and identifiers composed with psycopg2.sql:\n  "
                          + "\n  ".join(problems))


def test_the_scan_reaches_the_sql_modules():
    files = {p.relative_to(REPO).as_posix() for p in product_files()}
    assert {"worker_utils/repository.py", "worker_utils/db.py", "worker_utils/local_stack.py"} <= files


@pytest.mark.parametrize("code,needle", [
    ('def f(cur, vid):\n    cur.execute(f"SELECT * FROM videos WHERE id = \'{vid}\'")', "f-string"),
    ('def f(cur, vid):\n    cur.execute("SELECT * FROM videos WHERE id = \'%s\'" % vid)', "%-formatting"),
    ('def f(cur, vid):\n    cur.execute("SELECT * FROM videos WHERE id = {}".format(vid))', "str.format"),
    ('def f(cur, vid):\n    cur.execute("SELECT * FROM videos WHERE id = " + vid)', "concatenation"),
    ('def f(cur):\n    cur.execute("SELECT * FROM videos WHERE id = " + g())', "expression"),
    ('def f(db, vid):\n    q = f"DELETE FROM videos WHERE id = {vid}"\n    db.execute(q)', "f-string"),
    ('Q = "SELECT %s" % 1\ndef f(db):\n    db.fetchall(Q)', "%-formatting"),
    ('def f(cur, t):\n    cur.execute(sql.SQL("SELECT " + t))', "expression"),
    ('def f(cur, t, rows):\n    execute_values(cur, f"INSERT INTO {t} VALUES %s", rows)', "f-string"),
])
def test_the_scan_catches_formatted_sql(code, needle):
    found = scan(textwrap.dedent(code))
    assert found and any(needle in f for f in found), found


@pytest.mark.parametrize("code", [
    'def f(cur, vid):\n    cur.execute("SELECT * FROM videos WHERE id = %s", (vid,))',
    'def f(cur, name):\n    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))',
    'Q = sql.SQL("SELECT {} FROM t").format(sql.SQL(", ").join(map(sql.Identifier, COLS)))\n'
    'def f(db, v):\n    db.fetchone(Q, (v,))',
    'def fetchall(self, query, params=()):\n    self.cur.execute(query, params)',
    'def f(cur):\n    q = ("SELECT 1"\n         " FROM t")\n    cur.execute(q)',
    'def f(cur, rows):\n    q = sql.SQL("INSERT INTO t ({}) VALUES %s").format(sql.Identifier("a"))\n'
    '    execute_values(cur, q, rows)',
])
def test_the_scan_accepts_parameterised_sql(code):
    assert scan(code) == []
