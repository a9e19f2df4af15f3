"""Does a file a student receives hold an answer? Fingerprints of the course's answers, and a scan.

What counts as an answer, read from the nbgrader source notebooks (``solutions/<lab>/<lab>.ipynb``):

* **answer defs**: every function, method and class whose lines overlap a ``### BEGIN SOLUTION``
  block (the def around a block, and every def inside one), unless it holds no significant
  statement (an ``__init__`` of ``super().__init__(...)`` and ``self.ratio = 1.0`` is what the
  contract dictates, not an answer; such defs are listed in ``Answers.ignored``). A def is fingerprinted by its AST
  without docstrings, comments, line numbers or its own name (``ast.dump`` of the node renamed), so
  a copy that was re-indented, re-commented, re-documented or renamed still matches.
* **answer blocks**: the significant statements of each solution block, in order (each statement's
  AST dump; compound statements give their header and then their body). A def or a cell elsewhere
  that contains ``COVERAGE`` of them in the same order (at least ``MIN_STATEMENTS``) holds most of
  the answer even when it was edited (validation dropped, a helper renamed around it).
* **hidden tests**: every ``### BEGIN HIDDEN TESTS`` block, as its significant code lines with
  whitespace normalised (imports, comments, blank lines and lines of a few characters are not
  significant). A block appears in a file when all its significant lines appear there in order.
  Blocks with fewer than ``MIN_HIDDEN_LINES`` significant lines are too small to tell apart from
  common code; they are listed in ``Answers.ignored`` instead.
* **model answers** of written questions (markdown solution blocks): each paragraph of at least
  ``MIN_PROSE_CHARS`` characters, whitespace and case normalised.

``scan(files, answers)`` compares them with every ``.py`` file, notebook and Markdown file given. Nothing
here imports the grading code: the kit builder and the tests call it with the course's sources.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path
from typing import Iterable, Mapping

SOLUTION_BLOCK = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)
HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n(.*?)^[ \t]*### END HIDDEN TESTS[ \t]*$",
                          re.M | re.S)
MARKER = re.compile(r"^[ \t]*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)[ \t]*$", re.M)

COVERAGE = 0.5           # share of an answer block's statements that, found in order, is a leak
MIN_STATEMENTS = 3       # ... and never fewer statements than this
MIN_NODES = 5            # a statement with fewer AST nodes (``return out``) is not significant
MIN_HIDDEN_LINES = 3     # smaller hidden-test blocks are reported as ignored
MIN_LINE_CHARS = 8       # shorter code lines (``)``, ``else:``) are not significant
MIN_PROSE_CHARS = 60     # shorter model-answer paragraphs are not compared


# ---- parsing -------------------------------------------------------------------------------------
def python_source(src: str) -> str:
    """Cell source as plain Python: IPython magics, shell escapes and help lines become ``pass``
    (same indentation), so ``ast.parse`` reads the rest."""
    out = []
    for line in src.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or (stripped.endswith("?") and not stripped.startswith("#")):
            line = line[: len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def parse(src: str) -> ast.Module | None:
    """The AST of a cell or file, or ``None`` when it is not Python (then it is compared by lines only)."""
    try:
        return ast.parse(python_source(src))
    except (SyntaxError, ValueError):
        return None


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_CTX = (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body or [ast.Pass()]


def _dump(node, drop_name: bool = False) -> str:
    """``ast.dump`` without positions, field names or docstrings (at every level), faster."""
    if isinstance(node, ast.AST):
        parts = []
        for field in node._fields:
            if field == "type_comment":
                continue
            value = getattr(node, field, None)
            if field == "name" and drop_name:
                value = "_"
            elif field == "body" and isinstance(node, (*_DEFS, ast.Module)):
                value = _without_docstring(value)
            parts.append(_dump(value))
        return f"{type(node).__name__}({','.join(parts)})"
    if isinstance(node, list):
        return "[" + ",".join(_dump(x) for x in node) + "]"
    return repr(node)


def fingerprint(node: ast.AST) -> str:
    """A def's identity: its AST without docstrings (at every level), positions or its own name."""
    return _dump(node, drop_name=isinstance(node, _DEFS))


def _size(node: ast.AST) -> int:
    return sum(1 for n in ast.walk(node) if not isinstance(n, _CTX))


def _trivial(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass, ast.Global, ast.Nonlocal, ast.Break, ast.Continue)):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True                                   # docstrings and bare literals
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute) \
            and isinstance(stmt.value.func.value, ast.Call) and isinstance(stmt.value.func.value.func, ast.Name) \
            and stmt.value.func.value.func.id == "super" and stmt.value.func.attr == "__init__":
        return True                                   # super().__init__(...)
    return _size(stmt) < MIN_NODES


def _header(node: ast.stmt) -> ast.AST | None:
    """The part of a compound statement that is not its body (to fingerprint on its own)."""
    if isinstance(node, (ast.If, ast.While)):
        return ast.Expr(node.test)
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return ast.Assign([node.target], node.iter)
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return ast.Tuple([i.context_expr for i in node.items], ast.Load())
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.args
    if isinstance(node, ast.ClassDef):
        return ast.Tuple(list(node.bases), ast.Load())
    return None


def statements(body: Iterable[ast.stmt]) -> list[str]:
    """The significant statements of ``body`` in source order, each as an AST dump (no positions).
    Compound statements give their header (if it is significant) and then their bodies."""
    out: list[str] = []
    for stmt in body:
        head = _header(stmt)
        if head is not None or isinstance(stmt, ast.Try) or (hasattr(ast, "TryStar") and isinstance(stmt, ast.TryStar)):
            if head is not None and _size(head) >= MIN_NODES:
                out.append(_dump(head))
            for field in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, field, None) or []
                if field == "body" and isinstance(stmt, _DEFS):
                    inner = _without_docstring(inner)
                out += statements(inner)
            for handler in getattr(stmt, "handlers", None) or []:
                out += statements(handler.body)
        elif not _trivial(stmt):
            out.append(_dump(stmt))
    return out


def significant_lines(src: str) -> list[str]:
    """Code lines that identify a block: whitespace collapsed; no blanks, comments, imports, or
    lines shorter than ``MIN_LINE_CHARS``; a trailing comment is dropped."""
    out = []
    for line in src.splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if "#" in line:                                           # drop a trailing comment, roughly
            line = re.sub(r"\s+#[^'\"]*$", "", line)
        if not line or line.startswith(("#", "import ", "from ")) or len(line) < MIN_LINE_CHARS:
            continue
        out.append(line)
    return out


def _prose(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


# ---- the answers ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Answers:
    """Fingerprints of every answer of the given source notebooks."""
    defs: dict[str, str] = dataclasses.field(default_factory=dict)                 # fingerprint -> label
    blocks: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)  # (label, statements)
    hidden: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)  # (label, lines)
    prose: list[tuple[str, str]] = dataclasses.field(default_factory=list)         # (label, paragraph)
    ignored: list[str] = dataclasses.field(default_factory=list)                   # too small to compare

    def __len__(self) -> int:
        return len(self.defs) + len(self.blocks) + len(self.hidden) + len(self.prose)


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def add_cell(answers: Answers, src: str, where: str, kind: str = "code", solution: bool = False) -> None:
    """Add the answers of one source cell to ``answers``. ``kind`` is ``code`` or ``markdown``;
    ``solution`` says nbgrader marks the cell as a solution cell (then, without markers, the whole
    cell is the answer: nbgrader replaces all of it in the release)."""
    if solution and "### BEGIN SOLUTION" not in src:
        src = f"### BEGIN SOLUTION\n{src.rstrip()}\n### END SOLUTION\n"
    if kind != "code":
        for m in SOLUTION_BLOCK.finditer(src):
            for para in re.split(r"\n\s*\n", m.group(1)):
                text = _prose(para)
                if len(text) >= MIN_PROSE_CHARS:
                    answers.prose.append((f"{where}: model answer", text))
        return
    for m in HIDDEN_BLOCK.finditer(src):
        lines = significant_lines(m.group(1))
        label = f"{where}: hidden tests (line {_line_of(src, m.start())})"
        if len(lines) >= MIN_HIDDEN_LINES:
            answers.hidden.append((label, lines))
        else:
            answers.ignored.append(f"{label}: only {len(lines)} significant line(s): {lines}")
    spans = [(_line_of(src, m.start()), _line_of(src, m.end())) for m in SOLUTION_BLOCK.finditer(src)]
    if not spans:
        return
    plain = MARKER.sub("", src)          # marker lines become blank: line numbers are kept
    tree = parse(plain)
    if tree is None:
        answers.ignored.append(f"{where}: solution cell is not Python; compared by nothing")
        return
    for node in ast.walk(tree):
        if isinstance(node, _DEFS) and any(node.lineno <= b and a <= node.end_lineno for a, b in spans):
            if not statements(node.body):    # boilerplate only: super().__init__(...), self.ratio = 1.0
                answers.ignored.append(f"{where}: {node.name}: no significant statement (boilerplate the "
                                       f"contract dictates); not compared")
                continue
            answers.defs.setdefault(fingerprint(node), f"{where}: {node.name}")
    for a, b in spans:
        stmts = statements(_block_statements(tree, a, b))
        if stmts:
            answers.blocks.append((f"{where}: solution block (line {a})", stmts))


def _block_statements(tree: ast.AST, a: int, b: int) -> list[ast.stmt]:
    """The outermost statements between the marker lines ``a`` and ``b``, in source order."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    inside = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and a < n.lineno and n.end_lineno < b]
    ids = {id(n) for n in inside}

    def nested(n):
        p = parents.get(n)
        while p is not None:
            if id(p) in ids:
                return True
            p = parents.get(p)
        return False

    return sorted((n for n in inside if not nested(n)), key=lambda n: (n.lineno, n.col_offset))


def answers_of(notebooks: Iterable[str | Path]) -> Answers:
    """The answers of nbgrader source notebooks (solution blocks, hidden tests, model answers)."""
    answers = Answers()
    for path in notebooks:
        path = Path(path)
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            src = "".join(cell.get("source", ""))
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if "### BEGIN" in src or meta.get("solution"):
                add_cell(answers, src, f"{path.stem}/{meta.get('grade_id') or f'cell {i}'}",
                         cell.get("cell_type", "code"), bool(meta.get("solution")))
    return answers


# ---- scanning what a student receives ------------------------------------------------------------
@dataclasses.dataclass
class Finding:
    file: str
    where: str          # the def / cell in that file
    answer: str         # which answer it holds
    how: str            # "identical def", "most of a solution block", "hidden tests", "model answer"

    def __str__(self) -> str:
        return f"{self.file}: {self.where} holds {self.answer} ({self.how})"


FENCE = re.compile(r"^```[ \t]*(?:python|py|ipython|python3)?[ \t]*\n(.*?)^```", re.M | re.S)


def _units(text: str, name: str) -> tuple[list[tuple[str, ast.AST]], list[str], str]:
    """``(defs, lines, prose)`` of a file: every def with a label, all code lines, and its text."""
    if name.endswith(".ipynb"):
        try:
            cells = json.loads(text)["cells"]
        except (ValueError, KeyError, TypeError):
            cells = [{"cell_type": "code", "source": text}]
        codes = [(f"cell {i}", "".join(c.get("source", ""))) for i, c in enumerate(cells)
                 if c.get("cell_type") == "code"]
        prose = "\n".join("".join(c.get("source", "")) for c in cells)
    elif name.endswith(".md"):
        codes = [(f"code block {i}", m.group(1)) for i, m in enumerate(FENCE.finditer(text))]
        prose = text
    else:
        codes, prose = [("module", text)], text
    defs: list[tuple[str, ast.AST]] = []
    for cell, src in codes:
        tree = parse(src)
        if tree is None:
            continue
        defs.append((cell, tree))
        defs.extend((f"{cell}: {node.name} (line {node.lineno})", node)
                    for node in ast.walk(tree) if isinstance(node, _DEFS))
    if name.endswith(".md"):
        lines = significant_lines(text)
    else:
        lines = [ln for _, src in codes for ln in significant_lines(src)]
    return defs, lines, _prose(prose)


def _in_order(needle: list, hay: list) -> int:
    """How many items of ``needle`` appear in ``hay`` in the same order (longest common subsequence)."""
    if not needle or not hay:
        return 0
    prev = [0] * (len(hay) + 1)
    for x in needle:
        cur = [0] * (len(hay) + 1)
        for j, y in enumerate(hay, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def _subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


def scan_text(text: str, name: str, answers: Answers) -> list[Finding]:
    """Findings for one file (a ``.py`` source or a notebook's JSON) named ``name``."""
    findings: list[Finding] = []
    defs, lines, prose = _units(text, name)
    for where, node in defs:
        if isinstance(node, _DEFS):
            label = answers.defs.get(fingerprint(node))
            if label:
                findings.append(Finding(name, where, label, "identical def"))
                continue
        body = node.body if isinstance(node, (*_DEFS, ast.Module)) else []
        stmts = statements(body)
        have = set(stmts)
        for label, block in answers.blocks:
            if len(block) < MIN_STATEMENTS or sum(s in have for s in set(block)) < MIN_STATEMENTS:
                continue
            n = _in_order(block, stmts)
            if n >= MIN_STATEMENTS and n >= COVERAGE * len(block):
                findings.append(Finding(name, where, label, f"most of a solution block: {n} of "
                                                            f"{len(block)} statements in order"))
    for label, block in answers.hidden:
        if _subsequence(block, lines):
            findings.append(Finding(name, "its code", label, f"hidden tests: all {len(block)} significant lines "
                                                             f"in order"))
    for label, para in answers.prose:
        if para in prose:
            findings.append(Finding(name, "its text", label, "model answer"))
    return _dedupe(findings)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per file and exercise (an identical def before "most of its block")."""
    rank = {"identical def": 0}
    seen, out = set(), []
    for f in sorted(findings, key=lambda f: rank.get(f.how, 1)):
        key = (f.file, f.answer.split(":")[0], f.how.split(":")[0] in ("hidden tests", "model answer") and f.answer)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def scan(files: Mapping[str, str], answers: Answers) -> list[Finding]:
    """Findings in ``{name: text}`` (``.py`` and ``.ipynb`` files, and the code blocks and text of ``.md``)."""
    out: list[Finding] = []
    for name, text in sorted(files.items()):
        if name.endswith((".py", ".ipynb", ".md")):
            out += scan_text(text, name, answers)
    return out


# ---- pointers from what a student receives to files only the instructor has ----------------------
POINTER = re.compile(r"(?<![\w/.-])((?:solutions|tests|data_scripts|scripts|docs)/[\w./-]*\w)")


def pointers(files: Mapping[str, str], shipped: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, path)`` for every repository path named in a notebook or README that is not shipped."""
    shipped = set(shipped)
    out = []
    for name, text in sorted(files.items()):
        if not name.endswith((".ipynb", ".md")):
            continue
        out.extend((name, path) for path in sorted(set(POINTER.findall(text)))
                   if not any(s == path or s.endswith("/" + path) for s in shipped))
    return out
