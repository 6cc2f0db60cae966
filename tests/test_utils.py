"""Shared helpers of brainalign.utils: one error type for bad input."""

import numpy as np
import pytest

from brainalign.utils import InputError, check_finite, check_ids_match, check_option


def test_check_option_raises_input_error_listing_allowed_values():
    assert check_option("metric", "pearson", ("pearson", "spearman")) == "pearson"
    with pytest.raises(InputError, match=r"'metric' parameter. Allowed values are 'pearson' and "
                                         r"'spearman', but got 'kendall' instead"):
        check_option("metric", "kendall", ("pearson", "spearman"))
    # InputError subclasses ValueError: existing `except ValueError` handlers keep working
    with pytest.raises(ValueError):
        check_option("x", 3, (1,))


def test_check_finite_and_ids_match_raise_input_error():
    with pytest.raises(InputError, match=r"layer: found 1 non-finite .* index \(1,\)"):
        check_finite(np.array([0.0, np.inf]), "layer")
    with pytest.raises(InputError, match="first difference at position 1"):
        check_ids_match(["a", "b"], ["a", "c"], "brain", "model")
