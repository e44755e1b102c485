"""Sample data: shipped nuclei files, the generated RGB example, napari layer tuples."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from napari_unet_studio._sample_data import (
    MULTICLASS_CLASSES,
    NUCLEI_CLASSES,
    load_nuclei,
    make_multiclass,
    multiclass_sample,
    nuclei_sample,
)


def test_nuclei_files_are_consistent():
    image, scribbles, mask = load_nuclei()
    assert image.shape == scribbles.shape == mask.shape == (512, 512)
    assert image.dtype == scribbles.dtype == mask.dtype == np.uint8
    assert 200 <= int(image.max()) <= 255
    assert set(np.unique(mask)) == {1, 2}
    assert set(np.unique(scribbles)) == {0, 1, 2}
    labeled = scribbles > 0
    assert 0.01 <= labeled.mean() <= 0.04
    # every stroke agrees with the ground truth
    assert np.array_equal(scribbles[labeled], mask[labeled])
    # the nuclei cover a plausible fraction of the image
    assert 0.1 <= (mask == 2).mean() <= 0.4


def test_nuclei_sample_layer_tuples():
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = nuclei_sample()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert labels_meta["name"] == "scribbles"
    assert labels_meta["metadata"]["class_names"] == NUCLEI_CLASSES
    assert image.shape == labels.shape


def test_multiclass_is_deterministic_and_consistent():
    image, scribbles, truth = make_multiclass()
    again = make_multiclass()
    assert all(np.array_equal(a, b) for a, b in zip((image, scribbles, truth), again))
    assert not np.array_equal(make_multiclass(seed=1)[0], image)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert set(np.unique(truth)) == {1, 2, 3}
    assert set(np.unique(scribbles)) == {0, 1, 2, 3}
    labeled = scribbles > 0
    assert np.array_equal(scribbles[labeled], truth[labeled])
    assert labeled.mean() < 0.05
    # the classes differ in colour on average (learnable)
    means = [image[truth == k].mean(axis=0) for k in (1, 2, 3)]
    assert np.argmax(means[1]) == 0 and np.argmax(means[2]) == 2


def test_multiclass_sample_layer_tuples():
    (image, image_meta, _), (labels, labels_meta, _) = multiclass_sample()
    assert image_meta["rgb"] is True and image.shape[:2] == labels.shape
    assert labels_meta["metadata"]["class_names"] == MULTICLASS_CLASSES


def test_sample_module_and_reader_do_not_import_torch():
    code = (
        "import sys; import napari_unet_studio._sample_data as s, napari_unet_studio._reader; "
        "s.nuclei_sample(); s.multiclass_sample(); print('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr
