"""The schema, the default config and config/README.md describe the same keys."""

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())
README = (ROOT / "config/README.md").read_text()


def _is_section(sub):
    """A config section groups keys; a leaf (even a dict-valued one) has a default."""
    return "properties" in sub and "default" not in sub


def _schema_keys(node, prefix=""):
    keys = []
    for name, sub in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        if _is_section(sub):
            keys += _schema_keys(sub, key + ".")
        else:
            keys.append(key)
    return keys


def _config_keys(node, prefix=""):
    keys = []
    for name, sub in node.items():
        key = f"{prefix}{name}"
        if isinstance(sub, dict) and key not in SCHEMA_LEAVES:
            keys += _config_keys(sub, key + ".")
        else:
            keys.append(key)
    return keys


SCHEMA_LEAVES = set(_schema_keys(SCHEMA))


def test_every_schema_key_has_description_and_default():
    def walk(node, prefix=""):
        for name, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{prefix}{name} has no description"
            if _is_section(sub):
                walk(sub, f"{prefix}{name}.")
            else:
                assert "default" in sub, f"{prefix}{name} has no default"
    walk(SCHEMA)


def test_default_config_is_valid_and_complete():
    jsonschema.validate(CONFIG, SCHEMA)
    assert set(_config_keys(CONFIG)) == SCHEMA_LEAVES


def test_readme_documents_every_key():
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", README, flags=re.M))
    assert documented == SCHEMA_LEAVES


@pytest.mark.parametrize("path", sorted((ROOT / "config/papers").glob("*.yaml")))
def test_paper_configs_are_valid(path):
    cfg = yaml.safe_load(path.read_text())
    jsonschema.validate(cfg, SCHEMA)


def _subject_list_keys(node, prefix=""):
    """Key paths of every ``subjects`` list in the schema."""
    keys = []
    for name, sub in node.get("properties", {}).items():
        if name == "subjects" and sub.get("type") == "array":
            keys.append(f"{prefix}{name}")
        elif _is_section(sub):
            keys += _subject_list_keys(sub, f"{prefix}{name}.")
    return keys


def _with(key, value):
    """A deep copy of the default config with ``key`` (dotted) set to ``value``."""
    import copy

    cfg = copy.deepcopy(CONFIG)
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[leaf] = value
    return cfg


@pytest.mark.parametrize("key", ["nsd.ncsnr_threshold", "nsd.floc_t_threshold"])
def test_schema_rejects_nan_thresholds(key):
    with pytest.raises(jsonschema.ValidationError, match="nan"):
        jsonschema.validate(_with(key, float("nan")), SCHEMA)
    for ok in (0.0, -1.5, 3):
        jsonschema.validate(_with(key, ok), SCHEMA)


def test_every_subjects_list_rejects_duplicates():
    keys = _subject_list_keys(SCHEMA)
    assert "nsd.subjects" in keys and len(keys) >= 6
    for key in keys:
        with pytest.raises(jsonschema.ValidationError, match="non-unique"):
            jsonschema.validate(_with(key, [1, 1]), SCHEMA)
        jsonschema.validate(_with(key, [2, 1]), SCHEMA)
