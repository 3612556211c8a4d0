"""breakerpanel._outputs: how every generator writes its files or checks them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from breakerpanel._outputs import checkout_default, require_options, write_or_check


def test_check_names_stale_and_obsolete_files_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current, changed, missing, obsolete = (tmp_path / name for name in ("a.yaml", "b.yaml", "sub/c.yaml", "old.json"))
    current.write_text("same\n")
    changed.write_text("before\n")
    obsolete.write_text("{}\n")
    files = {current: "same\n", changed: "after\n", missing: "new\n"}

    assert write_or_check(files, check=True, remake="make rules", obsolete=[obsolete, current]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{changed} is stale: run `make rules`", f"{missing} is stale: run `make rules`",
                   f"{obsolete} is stale: run `make rules`"]  # fmt: skip
    assert changed.read_text() == "before\n"
    assert not missing.exists()
    assert obsolete.exists()

    assert write_or_check(files, check=False, remake="make rules", obsolete=[obsolete], shown_from=tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wrote b.yaml",
        "wrote sub/c.yaml",
        "removed old.json (no source makes it)",
    ]
    assert (changed.read_text(), missing.read_text(), obsolete.exists()) == ("after\n", "new\n", False)
    assert write_or_check(files, check=True, remake="make rules") == 0  # now up to date
    assert write_or_check(files, check=False, remake="make rules") == 0
    assert capsys.readouterr().out == ""  # nothing rewritten


def test_a_checkout_default_exists_or_the_option_is_required(tmp_path: Path) -> None:
    assert checkout_default(tmp_path) == tmp_path
    assert checkout_default(tmp_path / "absent.yaml") is None
    parser = argparse.ArgumentParser(prog="breakerpanel mesh")
    parser.add_argument("--config", type=Path, default=checkout_default(tmp_path / "absent.yaml"))
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args([])
    with pytest.raises(SystemExit) as exited:
        require_options(parser, args, "config", "out_dir")
    assert exited.value.code == 2
    require_options(parser, parser.parse_args(["--config", "x", "--out-dir", "y"]), "config", "out_dir")
