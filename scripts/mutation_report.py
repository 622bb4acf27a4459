"""Summarise a `mutmut run` (``make mutate``): per module, what the tests kill.

Run from the repository root after ``mutmut run``. It reads mutmut's results (the ``.meta``
files under ``mutants/``) and the mutated sources beside them, and sorts every mutant into
one of two kinds:

* **message-only**: the mutant changes nothing but the text of a message: a string argument
  of an exception's constructor (``raise ConfigError(f"...")``, ``StoreError("...")``), or any
  argument of a logging call or ``warnings.warn``. No test needs to pin such text.
* **behavioural**: everything else. The score is the share of these that the tests kill
  (killed, timed out or caught by the type checker), leaving out the survivors listed with a
  reason in ``docs/mutation.md`` (equivalent mutants: no test can tell them apart).

It prints a table per module, then the behavioural survivors not listed as equivalent,
grouped by function with the line each changes, and the listed equivalents that no longer
survive (mutant names shift when the code changes). ``--fail-under PERCENT`` exits 1 when a
module scores below it. It reads mutmut's files directly and imports nothing of mutmut.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MUTANTS = Path("mutants")
EQUIVALENTS = Path("docs/mutation.md")

# mutmut's exit codes (mutmut/stats.py, 3.8): what each verdict is called.
STATUS_BY_EXIT_CODE = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
DETECTED = {"killed", "timeout", "caught by type check"}

LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
LOGGER_NAMES = {"logger", "logging", "log", "warnings"}
EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")


# --- what a mutant changes ----------------------------------------------------------------------


def _differences(
    a: ast.AST, b: ast.AST, trail: tuple[ast.AST, ...] = ()
) -> Iterator[tuple[ast.AST, ...]]:
    """Where two trees differ: for each difference, the original's nodes from the root to it."""
    trail = (*trail, a)
    if type(a) is not type(b):
        yield trail
        return
    for name in a._fields:
        x, y = getattr(a, name, None), getattr(b, name, None)
        if isinstance(x, ast.AST) and isinstance(y, ast.AST):
            yield from _differences(x, y, trail)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for p, q in zip(x, y, strict=True):
                if isinstance(p, ast.AST) and isinstance(q, ast.AST):
                    yield from _differences(p, q, trail)
                elif p != q:
                    yield trail
        elif isinstance(x, ast.AST) or isinstance(y, ast.AST) or x != y:
            yield trail  # a node added or removed, a list of another length, another value


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{owner}.{func.attr}"
    return ""


def _is_log_call(call: ast.Call) -> bool:
    owner, _, method = _callee(call).rpartition(".")
    return owner in LOGGER_NAMES and method in LOG_METHODS


def _is_exception(call: ast.Call) -> bool:
    return _callee(call).rpartition(".")[2].endswith(EXCEPTION_SUFFIXES)


def _is_text(node: ast.AST) -> bool:
    """A message's text: a string, an f-string, their concatenation or %-formatting, or None
    (what mutmut puts in place of an argument)."""
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    return False


MessageParameters = dict[str, set[int | str]]
"""Function name -> the positions and keywords of its parameters that only make messages."""


def _in_message(
    trail: tuple[ast.AST, ...], mutant_call: ast.Call | None, params: MessageParameters
) -> bool:
    """Whether one difference lies in a message: the argument of a log call, the text given to
    an exception's constructor, or an argument a function only puts into messages."""
    for i, node in enumerate(trail):
        if not isinstance(node, ast.Call):
            continue
        below = trail[i + 1] if i + 1 < len(trail) else None
        if below is node.func:
            continue
        if _is_log_call(node):
            return True
        slots = params.get(_callee(node).rpartition(".")[2], set())
        if isinstance(below, ast.keyword) and below.arg in slots:
            return True
        if below is not None and any(below is arg for j, arg in enumerate(node.args) if j in slots):
            return True
        if _is_exception(node):
            if below is None:  # an argument added or removed: all must be text
                others = mutant_call.args if mutant_call is not None else []
                return all(_is_text(arg) for arg in [*node.args, *others])
            if isinstance(below, ast.keyword):
                return _is_text(below.value)
            return _is_text(below)
    return False


def _call_at(tree: ast.AST, like: ast.Call) -> ast.Call | None:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node, "lineno", None) == like.lineno
            and _callee(node) == _callee(like)
        ):
            return node
    return None


def _trails(
    node: ast.AST, name: str, trail: tuple[ast.AST, ...] = ()
) -> Iterator[tuple[ast.AST, ...]]:
    """The ancestors of every read of the variable ``name`` under ``node``."""
    trail = (*trail, node)
    if isinstance(node, ast.Name) and node.id == name:
        yield trail
    for child in ast.iter_child_nodes(node):
        yield from _trails(child, name, trail)


def message_parameters(tree: ast.AST) -> MessageParameters:
    """The parameters of the module's functions that are used only to make messages (such as
    the field name ``_int(value, "epoch")`` puts into its error), found to a fixed point."""
    functions = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    found: dict[str, set[int | str] | None] = {}  # None: the name means different functions
    for function in functions:
        found[function.name] = set() if function.name not in found else None
    params: MessageParameters = {}
    changed = True
    while changed:
        changed = False
        for function in functions:
            if found[function.name] is None:
                continue
            names = [a.arg for a in [*function.args.posonlyargs, *function.args.args]]
            offset = 1 if names[:1] in (["self"], ["cls"]) else 0
            slots = params.setdefault(function.name, set())
            for index, name in enumerate(names[offset:]):
                if name in slots:
                    continue
                uses = list(_trails(function, name))
                if uses and all(_in_message(trail, None, params) for trail in uses):
                    slots.update({index, name})
                    changed = True
    return {name: slots for name, slots in params.items() if slots}


def message_only(
    original: ast.FunctionDef | ast.AsyncFunctionDef,
    mutant: ast.AST,
    params: MessageParameters | None = None,
) -> bool:
    """Whether ``mutant`` differs from ``original`` only in the text of messages."""
    params = {} if params is None else params
    found = False
    for trail in _differences(original, mutant):
        if isinstance(trail[-1], ast.FunctionDef | ast.AsyncFunctionDef) and len(trail) == 1:
            continue  # the function's own name
        found = True
        last = trail[-1]
        mutant_call = _call_at(mutant, last) if isinstance(last, ast.Call) else None
        if not _in_message(trail, mutant_call, params):
            return False
    return found


# --- reading mutmut's results -------------------------------------------------------------------


@dataclass
class Mutant:
    name: str  # mutmut's key, e.g. fleetbreaker._protocol.x_trip__mutmut_3
    status: str
    message_only: bool
    function: str  # e.g. trip, Record.to_payload
    change: list[str] = field(default_factory=list)  # the lines it removes (-) and adds (+)

    @property
    def detected(self) -> bool:
        return self.status in DETECTED


def _function_label(generated: str) -> str:
    base = generated.rpartition("__mutmut_")[0]
    if base.startswith("xǁ"):
        return ".".join(part for part in base[2:].split("ǁ") if part)
    return base.removeprefix("x_")


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
    }


def _source(lines: list[str], node: ast.AST, name: str) -> list[str]:
    text = lines[node.lineno - 1 : node.end_lineno]  # type: ignore[attr-defined]
    return [line.replace(name, "FUNCTION", 1) for line in text]


def read_module(meta: Path) -> tuple[str, list[Mutant]]:
    """The mutants of one mutated module: (its source path, its mutants)."""
    source = meta.with_suffix("")  # mutants/src/x.py.meta -> mutants/src/x.py
    results: dict[str, int | None] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    text = source.read_text("utf-8")
    lines = text.splitlines()
    functions = _functions(ast.parse(text))
    pristine = source.relative_to(MUTANTS)  # the unmutated module in the working tree
    params = message_parameters(ast.parse(pristine.read_text("utf-8"))) if pristine.exists() else {}
    mutants = []
    for key, code in results.items():
        generated = key.rpartition(".")[2]
        original_name = generated.rpartition("__mutmut_")[0] + "__mutmut_orig"
        original, mutant = functions.get(original_name), functions.get(generated)
        status = "not checked" if code is None else STATUS_BY_EXIT_CODE.get(code, "suspicious")
        if original is None or mutant is None:
            mutants.append(Mutant(key, status, message_only=False, function="?"))
            continue
        before = _source(lines, original, original.name)
        after = _source(lines, mutant, mutant.name)
        change = [
            line.rstrip()
            for line in difflib.unified_diff(before, after, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        mutants.append(
            Mutant(
                key,
                status,
                message_only(original, mutant, params),
                _function_label(generated),
                change,
            )
        )
    return str(source.relative_to(MUTANTS)), mutants


def read_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> reason, from the rows ``| `name` | reason |`` of the equivalents file."""
    if not path.exists():
        return {}
    rows = re.findall(
        r"^\|\s*`([^`]+__mutmut_\d+)`\s*\|\s*(.*?)\s*\|\s*$", path.read_text("utf-8"), re.MULTILINE
    )
    return dict(rows)


# --- the report ---------------------------------------------------------------------------------


@dataclass
class Score:
    total: int = 0
    detected: int = 0
    message_only: int = 0
    message_survivors: int = 0
    behavioural: int = 0
    behavioural_detected: int = 0
    equivalent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def behavioural_survivors(self) -> int:
        return self.behavioural - self.behavioural_detected

    @property
    def percent(self) -> float:
        """Detected share of the behavioural mutants that are not listed as equivalent."""
        counted = self.behavioural - self.equivalent
        return 100.0 if counted <= 0 else 100.0 * self.behavioural_detected / counted


def score(mutants: list[Mutant], equivalents: dict[str, str]) -> Score:
    s = Score()
    for m in mutants:
        s.total += 1
        s.statuses[m.status] += 1
        s.detected += m.detected
        if m.message_only:
            s.message_only += 1
            s.message_survivors += not m.detected
        else:
            s.behavioural += 1
            s.behavioural_detected += m.detected
            s.equivalent += not m.detected and m.name in equivalents
    return s


def report(modules: dict[str, list[Mutant]], equivalents: dict[str, str]) -> dict[str, Score]:
    scores = {path: score(mutants, equivalents) for path, mutants in modules.items()}
    head = f"{'module':<32}{'total':>7}{'killed':>8}{'msg-only':>10}{'msg surv':>10}"
    head += f"{'behav':>7}{'surv':>6}{'equiv':>7}{'% behav killed':>16}"
    print(head)
    for path, s in scores.items():
        print(
            f"{path:<32}{s.total:>7}{s.detected:>8}{s.message_only:>10}{s.message_survivors:>10}"
            f"{s.behavioural:>7}{s.behavioural_survivors:>6}{s.equivalent:>7}{s.percent:>15.1f}%"
        )
    print(
        "\nkilled: killed, timed out or caught by the type checker. msg-only: mutants that only "
        "change message text\n(msg surv: those surviving). behav: the other mutants; surv: "
        "those surviving, equiv: of which\nlisted as equivalent in "
        f"{EQUIVALENTS}. % behav killed leaves the listed equivalents out."
    )
    odd = Counter[str]()
    for s in scores.values():
        odd.update({k: v for k, v in s.statuses.items() if k not in DETECTED | {"survived"}})
    if odd:
        print("other verdicts: " + ", ".join(f"{n} {k}" for k, n in sorted(odd.items())))

    print("\nbehavioural survivors not listed as equivalent, by function:")
    for path, mutants in modules.items():
        by_function: dict[str, list[Mutant]] = defaultdict(list)
        for m in mutants:
            if not m.detected and not m.message_only and m.name not in equivalents:
                by_function[m.function].append(m)
        if not by_function:
            continue
        print(f"\n{path}")
        for function, survivors in sorted(by_function.items()):
            print(f"  {function} ({len(survivors)})")
            for m in survivors:
                status = "" if m.status == "survived" else f" [{m.status}]"
                print(f"    {m.name.rpartition('.')[2]}{status}")
                for line in m.change:
                    print(f"        {line[0]} {line[1:].strip()}")

    alive = {m.name for mutants in modules.values() for m in mutants if not m.detected}
    stale = sorted(set(equivalents) - alive)
    if stale:
        print(f"\nlisted in {EQUIVALENTS} but not surviving (killed, renamed or gone):")
        for name in stale:
            print(f"  {name}")
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fail-under", type=float, default=0.0, metavar="PERCENT")
    args = parser.parse_args(argv)
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `mutmut run` first", file=sys.stderr)
        return 2
    modules = dict(read_module(meta) for meta in metas)
    scores = report(modules, read_equivalents(EQUIVALENTS))
    low = [path for path, s in scores.items() if s.percent < args.fail_under]
    if low:
        print(f"\nbelow {args.fail_under:g} %: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
