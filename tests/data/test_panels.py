"""One panel renderer for training, the demo and `dpdeblur-deblur --panel`."""

import numpy as np
import torch

from dpdeblur.data.panels import ERROR_GAIN, PANEL_GAP, comparison_row, render_panel


def test_one_row_side_by_side_with_white_gaps():
    red = np.zeros((5, 4, 3), np.float32)
    red[..., 0] = 1.0
    grey = np.full((5, 6, 1), 0.5, np.float32)
    panel = render_panel([[red, grey]])
    assert panel.dtype == np.uint8 and panel.shape == (5, 4 + PANEL_GAP + 6, 3)
    assert (panel[:, :4] == [255, 0, 0]).all()
    assert (panel[:, 4 : 4 + PANEL_GAP] == 255).all()
    assert (panel[:, 4 + PANEL_GAP :] == 128).all()  # one channel shown grey


def test_rows_are_padded_to_the_widest_and_values_clipped():
    wide = np.full((3, 10, 3), 2.0, np.float32)  # clipped to white
    narrow = np.full((2, 4, 3), -1.0, np.float32)  # clipped to black
    panel = render_panel([[wide], [narrow]])
    assert panel.shape == (3 + PANEL_GAP + 2, 10, 3)
    assert (panel[: 3 + PANEL_GAP] == 255).all()
    assert (panel[-2:, :4] == 0).all() and (panel[-2:, 4:] == 255).all()


def test_comparison_row_from_tensors_with_and_without_error():
    left, right = torch.zeros(3, 4, 5), torch.ones(3, 4, 5)
    output, target = torch.full((3, 4, 5), 0.5), torch.full((3, 4, 5), 0.4)
    row = comparison_row(left, right, output, target)
    assert [image.shape for image in row] == [(4, 5, 3)] * 5
    np.testing.assert_allclose(row[4], 0.1 * ERROR_GAIN, rtol=1e-5)
    assert len(comparison_row(left, right, output, target, show_error=False)) == 4
    assert len(comparison_row(left, right, output)) == 3
