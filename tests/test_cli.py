from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rfm_spark.cli import build_parser, format_table, main, render

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_commands_and_contract(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "generate" in out and "segment" in out and "Exit codes" in out


@pytest.mark.parametrize(
    "command",
    [
        "generate",
        "segment",
        "backfill",
        "history",
        "export",
        "transitions",
        "report",
        "train",
        "vacuum",
        "optimize",
    ],
)
def test_every_subcommand_has_help_with_common_options(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for flag in ("--config", "--warehouse", "--spark-conf", "--verbose"):
        assert flag in out


def test_bad_snapshot_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "--snapshot-date", "2026-02-30"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "rfm-spark segment: error: --snapshot-date '2026-02-30' is not a date; use YYYY-MM-DD, e.g. 2026-11-23"
    )


def test_config_error_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scoring:\n  bins: many\n")
    assert main(["segment", "--snapshot-date", "2026-11-23", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'scoring.bins'" in err and "found 'many'" in err


def test_flag_override_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "--snapshot-date", "2026-11-23", "--lookback-days", "0"]) == 2
    assert "'features.lookback_days'" in capsys.readouterr().err


def test_missing_argument_and_bad_spark_conf_exit_2() -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["segment"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(
            ["segment", "--snapshot-date", "2026-11-23", "--spark-conf", "novalue"]
        )
    assert e.value.code == 2


def test_format_table() -> None:
    text = format_table(["a", "n"], [("x", "1"), ("long", "22")], "lr")
    assert text.splitlines() == ["a      n", "----  --", "x      1", "long  22"]


def test_format_table_headers_only_and_right_aligned_headers() -> None:
    assert format_table(["segment", "n"], [], "lr").splitlines() == ["segment  n", "-------  -"]
    text = format_table(["customers", "s"], [(1234, None)], "rl")
    assert text.splitlines() == ["customers  s   ", "---------  ----", "     1234  None"]


def test_movers_list_is_cut_after_twenty() -> None:
    shown = [{"customer_id": i, "from_segment": "a", "to_segment": "b"} for i in range(20)]
    lines = render.movers_lines(shown, 25)
    assert lines[0] == "  0  a -> b" and len(lines) == 21
    assert lines[-1] == "  ... and 5 more (use --output FILE for all)"


def test_python_dash_m_runs_the_cli() -> None:
    cmd = [sys.executable, "-m", "rfm_spark.cli", "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.startswith("rfm-spark ")


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("rfm-spark")
    assert exe.exists(), "make install puts the rfm-spark console script beside python"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("rfm-spark ")
