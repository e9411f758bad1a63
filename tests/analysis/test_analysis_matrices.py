"""inoc.analysis.matrices: W builders and non-finite policies."""

from __future__ import annotations

import numpy as np
import pytest

from inoc.analysis.matrices import clean_nonfinite, token_weight_matrix, weight_matrix


def test_weight_matrix_rows_and_vector():
    default = np.array([-1.0, -2.0, np.nan])
    inoc = np.array([[-0.5, -2.5, -1.0], [-1.0, -1.0, -1.0]])
    W = weight_matrix(inoc, default)
    np.testing.assert_array_equal(W, [[0.5, -0.5, np.nan], [0.0, 1.0, np.nan]])
    np.testing.assert_array_equal(weight_matrix(inoc[0], default), W[0])
    with pytest.raises(ValueError, match="lp_inoc: 2 columns != lp_default length 3"):
        weight_matrix(inoc[:, :2], default)
    with pytest.raises(ValueError, match="lp_default: empty"):
        weight_matrix(inoc, [])


def test_token_weight_matrix_pad_truncate_and_round():
    default = [[-1.0, -2.0, -3.0], [], [-0.5]]
    inoc = [
        [[-0.5, -2.5, -3.0], [-9.0], [-0.25, -7.0]],  # example 1 has no default tokens; example 2 cut to 1
        [[-1.0, -1.0], [], [-1.0]],  # example 0 shorter than its default
    ]
    W = token_weight_matrix(default, inoc)  # pad: widths 4 and 3 → padded to 4
    np.testing.assert_allclose(W, [[0.5, -0.5, 0.0, 0.25], [0.0, 1.0, -0.5, 0.0]])
    assert W.dtype == np.float32
    T = token_weight_matrix(default, inoc, align="truncate", dtype=np.float64)
    np.testing.assert_allclose(T, [[0.5, -0.5, 0.0], [0.0, 1.0, -0.5]])
    R = token_weight_matrix([[-1.0]], [[[-0.123456]]], decimals=4, dtype=np.float64)
    assert R[0, 0] == pytest.approx(0.8765, abs=1e-12)


def test_token_weight_matrix_errors():
    with pytest.raises(ValueError, match="inoc_tokens\\[0\\]: 1 examples, expected 2"):
        token_weight_matrix([[-1.0], [-1.0]], [[[-1.0]]])
    with pytest.raises(ValueError, match="default_tokens: no examples"):
        token_weight_matrix([], [[]])
    with pytest.raises(ValueError, match="align"):
        token_weight_matrix([[-1.0]], [[[-1.0]]], align="left")
    with pytest.raises(ValueError, match="no token overlaps"):
        token_weight_matrix([[]], [[[-1.0]]])
    with pytest.raises(ValueError, match="inoc_tokens\\[0\\]\\[0\\]: expected a flat list"):
        token_weight_matrix([[-1.0, -2.0]], [[[[-1.0], [-2.0]]]])


def test_clean_nonfinite_policies():
    W = np.array([[1.0, np.nan, 3.0], [np.inf, 5.0, 6.0]], dtype=np.float32)
    Z = clean_nonfinite(W, "zero")
    np.testing.assert_array_equal(Z, [[1.0, 0.0, 3.0], [0.0, 5.0, 6.0]])
    assert Z.dtype == np.float32 and np.isnan(W[0, 1])  # input untouched
    np.testing.assert_array_equal(clean_nonfinite(W, "drop_columns"), [[3.0], [6.0]])
    with pytest.raises(ValueError, match="how"):
        clean_nonfinite(W, "mean")
    with pytest.raises(ValueError, match="every column"):
        clean_nonfinite(np.full((2, 2), np.nan), "drop_columns")
