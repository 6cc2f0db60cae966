"""Every paper has the same shape (docs/adding-a-paper.md): a rules file and a helpers file that
registers it, a schema section with `enabled`, a paper config; common.smk names no paper."""

import re

import pytest
import yaml
from conftest import PAPERS, ROOT

RULES = ROOT / "workflow" / "rules"


@pytest.mark.parametrize("paper", PAPERS)
def test_paper_has_its_files_and_registers_once(paper):
    rules, helpers = RULES / f"{paper}.smk", RULES / f"{paper}_helpers.smk"
    assert rules.is_file() and helpers.is_file(), paper
    snakefile = (ROOT / "Snakefile").read_text()
    assert f'include: "workflow/rules/{paper}_helpers.smk"' in snakefile
    assert f'include: "workflow/rules/{paper}.smk"' in snakefile
    text = helpers.read_text()
    assert len(re.findall(r"\bregister_paper\(", text)) == 1, "register_paper is called once"
    assert not re.search(r"^\s*rule \w+:", text, re.M), "helpers hold no rules (snakemake --lint)"
    assert not re.search(r"^def ", rules.read_text(), re.M), "the rules file holds no functions"
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert "enabled" in schema["properties"][paper]["properties"], paper
    assert (ROOT / "config" / "papers" / f"{paper}.yaml").is_file()
    assert paper in yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_common_names_no_paper():
    text = (RULES / "common.smk").read_text().lower()
    for word in ("conwell", "cichy", "lu2025", "kuzovkin", "arend"):
        assert word not in text, word


def test_every_rules_file_is_included():
    snakefile = (ROOT / "Snakefile").read_text()
    for path in RULES.glob("*.smk"):
        assert f'include: "workflow/rules/{path.name}"' in snakefile, path.name
