"""Bad inputs through the napari dock and its real worker process: a notification naming
the problem, the GUI usable again, and every layer the user had byte-identical afterwards.

(Float labels cannot reach the widget: napari itself refuses float data in a Labels
layer, and the labels picker lists Labels layers only.)
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog
from rel_helpers import (
    assert_layers_unchanged,
    layer_digests,
    load_tiny_model,
    scribbles,
    textured,
    wait_idle,
)


@pytest.fixture
def studio(shared_studio, qtbot):
    """The module's shared viewer and widget, reset to a fresh state for each test."""
    from rel_helpers import reset_widget

    viewer, widget, rec = shared_studio
    wait_idle(qtbot, widget)
    reset_widget(viewer, widget, rec)
    yield viewer, widget
    wait_idle(qtbot, widget)


@pytest.fixture
def notes(shared_studio):
    return shared_studio[2]


def _choose(widget, image_layer, labels_layer):
    row = widget.data_panel.rows[0]
    row.refresh()
    row.image.set_layer(image_layer)
    row.labels.set_layer(labels_layer)
    assert row.image.layer() is image_layer and row.labels.layer() is labels_layer


def _train(viewer, widget, qtbot, image, labels, image_kw=None, labels_kw=None):
    img = viewer.add_image(image, name="img", **(image_kw or {}))
    lab = viewer.add_labels(labels, name="lab", **(labels_kw or {}))
    viewer.add_points(np.array([[1.0, 1.0]]), name="pts")  # an unrelated user layer
    _choose(widget, img, lab)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    wait_idle(qtbot, widget)
    assert_layers_unchanged(viewer, before)
    return img, lab


def _nan_image():
    a = textured((16, 16))
    a[3, 3] = np.nan
    return a


def _inf_image():
    a = textured((16, 16), dtype=np.float64)
    a[0, 5] = -np.inf
    return a


def _stack_labels(nz):
    lab = np.zeros((nz, 16, 16), np.uint8)
    lab[nz // 3] = scribbles((16, 16))
    lab[-1, 8:10, 8:12] = 2
    return lab


ERROR_CASES = [
    ("empty_labels", lambda: textured((16, 16)), lambda: np.zeros((16, 16), np.uint8), {}, {},
     "No labels painted yet"),
    ("only_one_class", lambda: textured((16, 16)), lambda: scribbles((16, 16), 1), {}, {},
     "Only class 1"),
    ("shape_mismatch", lambda: textured((16, 20)), lambda: scribbles((16, 16)), {}, {},
     "different shapes"),
    ("negative_labels", lambda: textured((16, 16)),
     lambda: scribbles((16, 16)).astype(np.int16) - 1, {}, {}, "negative"),
    ("scale_mismatch", lambda: textured((16, 16)), lambda: scribbles((16, 16)),
     {"scale": (0.5, 0.5)}, {}, "scale"),
    ("translate_mismatch", lambda: textured((16, 16)), lambda: scribbles((16, 16)),
     {}, {"translate": (0, 7)}, "translate"),
    ("five_channels", lambda: textured((16, 16, 5)), lambda: scribbles((16, 16)), {}, {},
     "different shapes"),
    ("one_by_one", lambda: textured((1, 1)), lambda: np.ones((1, 1), np.uint8), {}, {},
     "Only class 1"),
    ("nan_pixel", _nan_image, lambda: scribbles((16, 16)), {}, {}, "NaN"),
    ("minus_inf_pixel", _inf_image, lambda: scribbles((16, 16)), {}, {}, "infinite"),
    ("instance_labels", lambda: textured((16, 16)),
     lambda: np.arange(1, 257, dtype=np.uint16).reshape(16, 16), {}, {}, "instance segmentation"),
]


@pytest.mark.parametrize(("image_fn", "labels_fn", "image_kw", "labels_kw", "words"),
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_training_refused_with_a_notification(studio, qtbot, notes, image_fn, labels_fn,
                                              image_kw, labels_kw, words):
    viewer, widget = studio
    _train(viewer, widget, qtbot, image_fn(), labels_fn(), image_kw, labels_kw)
    assert notes.errors, (notes.warnings, notes.infos)
    assert words.lower() in notes.errors[-1].lower(), notes.errors
    assert "Traceback" not in notes.errors[-1]
    assert widget.model is None


OK_CASES = [
    ("rgb", lambda: textured((16, 16, 3), dtype=np.uint8), lambda: scribbles((16, 16), 3),
     {"rgb": True}),
    ("two_channels", lambda: textured((16, 16, 2)), lambda: scribbles((16, 16)), {}),
    ("one_by_two", lambda: textured((1, 2)), lambda: np.array([[1, 2]], np.uint8), {}),
    ("seven_by_thirteen", lambda: textured((7, 13), dtype=np.uint16), lambda: scribbles((7, 13)),
     {}),
    ("one_slice_stack", lambda: textured((1, 16, 16)), lambda: scribbles((1, 16, 16)), {}),
    ("stack_200_slices", lambda: textured((200, 16, 16), dtype=np.uint8),
     lambda: _stack_labels(200), {}),
    ("constant", lambda: np.full((16, 16), 9, np.int32), lambda: scribbles((16, 16)), {}),
] + [
    (f"dtype_{np.dtype(dt).name}", (lambda dt=dt: textured((16, 16), dtype=dt)),
     lambda: scribbles((16, 16)), {})
    for dt in (np.uint16, np.float64, bool)  # uint8: rgb, int32: constant, float32: the rest
]


@pytest.mark.parametrize(("image_fn", "labels_fn", "image_kw"), [c[1:] for c in OK_CASES],
                         ids=[c[0] for c in OK_CASES])
def test_odd_but_valid_inputs_train_and_predict(studio, qtbot, notes, image_fn, labels_fn,
                                                image_kw):
    viewer, widget = studio
    img, lab = _train(viewer, widget, qtbot, image_fn(), labels_fn(), image_kw)
    assert not notes.errors, notes.errors
    assert widget.model is not None
    before = layer_digests(viewer)
    widget.predict_panel.image.set_layer(img)
    widget.predict_panel.predict_button.click()
    wait_idle(qtbot, widget)
    assert not notes.errors, notes.errors
    assert_layers_unchanged(viewer, before)
    pred = [ly for ly in viewer.layers if ly.name.startswith("img prediction (")]
    assert len(pred) == 1 and pred[0].data.shape == lab.data.shape
    assert pred[0].data.min() >= 1
    assert pred[0].data.max() <= widget.model.config["num_classes"]


def test_labels_above_the_models_classes_when_continuing(studio, qtbot, notes, tmp_path):
    """Class 3 painted while continuing a 2-class model: a new output layer, no error."""
    viewer, widget = studio
    load_tiny_model(qtbot, widget, tmp_path, 1, 2)
    widget.train_panel.continue_box.setChecked(True)
    _train(viewer, widget, qtbot, textured((16, 16)), scribbles((16, 16), 3))
    assert not notes.errors, notes.errors
    assert widget.model.config["num_classes"] == 3
    assert widget.model.record.get("init_from")


def test_corrections_with_a_new_class_then_continue(studio, qtbot, notes):
    """Predict, paint class 3 on the prediction, use the corrections, continue training."""
    viewer, widget = studio
    img, lab = _train(viewer, widget, qtbot, textured((16, 16)), scribbles((16, 16)))
    widget.predict_panel.image.set_layer(img)
    widget.predict_panel.predict_button.click()
    wait_idle(qtbot, widget)
    pred = viewer.layers["img prediction (bilinear)"]
    fixed = np.array(pred.data)
    fixed[10:12, 10:14] = 3
    pred.data = fixed
    viewer.layers.selection.active = pred
    before = layer_digests(viewer)
    widget.predict_panel.corrections_button.click()
    assert_layers_unchanged(viewer, {k: v for k, v in before.items() if v[0] != pred.name})
    merged = viewer.layers["lab + corrections"]
    assert merged.data.max() == 3
    widget.train_panel.continue_box.setChecked(True)
    before = layer_digests(viewer)
    widget.train_panel.train_button.click()
    wait_idle(qtbot, widget)
    assert not notes.errors, notes.errors
    assert widget.model.config["num_classes"] == 3
    assert_layers_unchanged(viewer, before)


@pytest.mark.parametrize(("model_kind", "image_fn", "image_kw", "words"), [
    ("rgb", lambda: textured((16, 16)), {}, "3 channels"),
    ("gray", lambda: textured((16, 16, 3), dtype=np.uint8), {"rgb": True}, "single-channel"),
    ("gray", _nan_image, {}, "NaN"),
    ("gray", lambda: np.where(textured((16, 16)) > 0.5, np.inf, 0.0), {}, "infinite"),
], ids=["gray_image_rgb_model", "rgb_image_gray_model", "nan_pixel", "inf_pixels"])
def test_prediction_refused_with_a_notification(studio, qtbot, notes, model_kind, image_fn,
                                                image_kw, words, tmp_path):
    viewer, widget = studio
    channels, classes = (3, 3) if model_kind == "rgb" else (1, 2)
    load_tiny_model(qtbot, widget, tmp_path, channels, classes)
    notes.infos.clear()
    img = viewer.add_image(image_fn(), name="img", **image_kw)
    widget.predict_panel.image.set_layer(img)
    before = layer_digests(viewer)
    widget.predict_panel.predict_button.click()
    wait_idle(qtbot, widget)
    assert notes.errors and words in notes.errors[-1], notes.errors
    assert len(viewer.layers) == len(before)
    assert_layers_unchanged(viewer, before)


def test_continue_a_model_made_for_other_channels(studio, qtbot, notes, tmp_path):
    viewer, widget = studio
    load_tiny_model(qtbot, widget, tmp_path, 3, 3)
    widget.train_panel.continue_box.setChecked(True)
    _train(viewer, widget, qtbot, textured((16, 16)), scribbles((16, 16)))
    assert notes.errors and "3 channel(s)" in notes.errors[-1]


@pytest.mark.parametrize("kind", ["truncated", "empty", "random_bytes", "foreign_state_dict",
                                  "foreign_tensor", "wrong_weights", "bad_normalisation",
                                  "newer_format", "folder",
                                  "missing"])
def test_loading_bad_model_files(studio, qtbot, notes, monkeypatch, model_files, kind, tmp_path):
    viewer, widget = studio
    viewer.add_image(textured((16, 16)), name="img")
    previous = load_tiny_model(qtbot, widget, tmp_path, 1, 2)
    before = layer_digests(viewer)
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        lambda *a, **k: (str(model_files[kind]), ""))
    widget.models_panel.load_button.click()
    wait_idle(qtbot, widget)
    assert len(notes.errors) == 1 and model_files[kind].name in notes.errors[-1], notes.errors
    assert "Traceback" not in notes.errors[-1]
    assert widget.model is previous  # the model the user had is kept
    assert_layers_unchanged(viewer, before)


def test_patch_size_too_small_for_the_depth(studio, qtbot, notes):
    viewer, widget = studio
    widget.model_panel["patch_size"].value = 8
    widget.model_panel["depth"].value = 3
    _train(viewer, widget, qtbot, textured((16, 16)), scribbles((16, 16)))
    assert notes.errors and "patch size (8 px) is too small" in notes.errors[-1], notes.errors
    assert "at least 16 px" in notes.errors[-1]
