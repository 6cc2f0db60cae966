"""workflow/scripts/_bootstrap.py: every rule script's output, progress and traceback reach its log."""

import sys
import types

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from _bootstrap import rule_log  # noqa: E402


def test_rule_log_holds_output_and_the_traceback(tmp_path):
    log = tmp_path / "logs" / "rule.log"
    sm = types.SimpleNamespace(log=[str(log)])
    with pytest.raises(RuntimeError, match="boom"):
        with rule_log(sm):
            print("progress line")
            raise RuntimeError("boom")
    text = log.read_text()
    assert "progress line" in text
    assert "Traceback" in text and "RuntimeError: boom" in text


def test_rule_log_without_a_log_file():
    with rule_log(types.SimpleNamespace(log=[])):
        pass
