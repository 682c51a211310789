"""Cyclomatic complexity (radon's), checked on the package so that no function grows past what one can read.

No function above 25; at most five ranked D (21-30), each with a ``# complexity:`` comment just
above it saying why it is not split. ``radon cc -n D orkes_provision`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Class, Function

PACKAGE = Path(__file__).resolve().parent.parent / "orkes_provision"
MOST = 25
MOST_RANKED_D = 5


@dataclass(frozen=True)
class Block:
    path: Path
    name: str
    line: int
    complexity: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(PACKAGE.parent)}:{self.line} {self.name} ({self.complexity})"


def _blocks() -> list[Block]:
    found: list[Block] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            # A class's own score is its methods' together: the methods are checked one by one.
            functions = block.methods if isinstance(block, Class) else [block]
            found.extend(Block(path, f.fullname, f.lineno, f.complexity) for f in functions if isinstance(f, Function))
            if isinstance(block, Function):
                found.extend(Block(path, f"{block.name}.{c.name}", c.lineno, c.complexity) for c in block.closures)
    return sorted(set(found), key=lambda b: (str(b.path), b.line))  # radon lists some methods twice


def _explained(block: Block) -> bool:
    lines = block.path.read_text(encoding="utf-8").splitlines()
    above = lines[max(0, block.line - 4):block.line - 1]
    return any(line.strip().lower().startswith("# complexity:") for line in above)


def test_no_function_is_more_complex_than_25() -> None:
    assert [str(b) for b in _blocks() if b.complexity > MOST] == []


def test_at_most_five_functions_rank_d_and_each_says_why() -> None:
    ranked_d = [b for b in _blocks() if cc_rank(b.complexity) == "D"]
    assert len(ranked_d) <= MOST_RANKED_D, [str(b) for b in ranked_d]
    assert [str(b) for b in ranked_d if not _explained(b)] == []


def test_the_check_sees_nested_and_method_complexity() -> None:
    # Guards the walk above: a method and a closure of these shapes must be found with their scores.
    source = "class A:\n    def m(self, x):\n        return 1 if x else 2\n\n" \
             "def f(y):\n    def g(z):\n        return 1 if z else 2\n    return g\n"
    blocks = cc_visit(source)
    assert [(m.fullname, m.complexity) for b in blocks if isinstance(b, Class) for m in b.methods] == [("A.m", 2)]
    assert [(c.name, c.complexity) for b in blocks if isinstance(b, Function) for c in b.closures] == [("g", 2)]
