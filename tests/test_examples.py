"""The orchestration example in docs/ runs commands the command line accepts.

Airflow is not installed here: the DAG file's syntax tree is read, and every task's arguments
(with Airflow's templates filled in) are parsed by the real parser, so the example cannot drift
from the command line.
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path

from rfm_spark.cli import build_parser

DAG = Path(__file__).resolve().parents[1] / "docs" / "examples" / "airflow_rfm_daily.py"
TEMPLATES = {"{{ ds }}": "2026-11-23", "{{ run_id }}": "scheduled__2026-11-23T03:00:00+00:00"}


def _text(node: ast.expr, names: dict[str, str]) -> str:
    """The string an argument expression of the DAG file evaluates to."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left, names) + _text(node.right, names)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(v.value) if isinstance(v, ast.Constant) else _text(v.value, names)  # type: ignore[attr-defined]
            for v in node.values
        )
    raise AssertionError(f"cannot read {ast.dump(node)}")


def task_arguments() -> list[list[str]]:
    tree = ast.parse(DAG.read_text())
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(AssertionError, KeyError):
                names[node.targets[0].id] = _text(node.value, names)
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "rfm"
    ]
    out = []
    for call in calls:
        args = [_text(a, names) for a in call.args[1:]] + ["--config", names["CONFIG"]]
        for template, value in TEMPLATES.items():
            args = [a.replace(template, value) for a in args]
        out.append(args)
    return out


def test_every_task_of_the_dag_is_a_valid_command() -> None:
    tasks = task_arguments()
    assert [t[0] for t in tasks] == ["segment", "campaigns", "report"]
    for args in tasks:
        parsed = build_parser().parse_args(args)
        assert parsed.func is not None
    segment = build_parser().parse_args(tasks[0])
    assert segment.json and segment.idempotency_key.endswith("-segment")
