"""Objects panel: Find objects (instance layer + table + CSV) and the big-file job's events."""

from __future__ import annotations

import csv

import numpy as np


def _touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:64, :90]
    mask = ((yy - 32) ** 2 + (xx - 25) ** 2 < 100) | ((yy - 32) ** 2 + (xx - 41) ** 2 < 100)
    mask |= (yy - 15) ** 2 + (xx - 75) ** 2 < 36
    return (1 + mask).astype(np.uint8)


def test_find_objects_adds_an_instance_layer_and_a_table(studio, qtbot, tmp_path):
    viewer, widget = studio
    classes = _touching_discs()
    image = np.where(classes == 2, 200.0, 20.0).astype(np.float32)
    viewer.add_image(image, name="cells")
    mine = viewer.add_labels(classes.copy(), name="my classes")
    panel, ctrl = widget.objects_panel, widget.objects
    panel.classes_layer.setCurrentText("my classes")
    panel.image.setCurrentText("cells")
    panel.find_button.click()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 3 and not ctrl.running, timeout=20000)
    layer = viewer.layers["my classes objects"]
    assert layer.data.max() == 3 and layer.data[32, 20] != layer.data[32, 46]
    np.testing.assert_array_equal(mine.data, classes)       # the user's layer is untouched
    assert {panel.table.item(i, 5).text() for i in range(3)} == {"200.00"}
    assert panel.save_button.isEnabled()
    path = ctrl.save_csv(str(tmp_path / "objects.csv"))
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["area"]) for r in rows) == sorted(
        int((layer.data == i).sum()) for i in range(1, 4))
    panel.find_button.click()                                # again: the same layer updated
    qtbot.waitUntil(lambda: not ctrl.running, timeout=20000)
    assert [ly.name for ly in viewer.layers].count("my classes objects") == 1


class _Job:
    """A predict_store job that reports two blocks and finishes."""

    def __init__(self, result: dict) -> None:
        self.events = [("progress", {"phase": "predict", "done_blocks": 1, "total_blocks": 2}),
                       ("progress", {"phase": "predict", "done_blocks": 2, "total_blocks": 2}),
                       ("done", result)]
        self.finished = False
        self.stopped = False

    def poll(self):
        events, self.events = self.events, []
        self.finished = True
        return events

    def stop(self) -> None:
        self.stopped = True


def test_predict_file_sends_paths_and_opens_the_store(studio, qtbot, tmp_path, notes):
    from napari.layers._source import layer_source

    from napari_unet_studio.io import create_prediction_store, open_image

    viewer, widget = studio
    import zarr
    from ome_zarr.writer import write_image

    img = np.zeros((40, 50), np.uint16)
    write_image(img, zarr.open_group(str(tmp_path / "in.zarr"), mode="w"), axes="yx",
                scale_factors=[2])
    out = tmp_path / "in_prediction.zarr"
    store = create_prediction_store(out, open_image(tmp_path / "in.zarr"), 2, instances=True,
                                    resume=False)
    store.arrays["labels/classes/0"][:] = 2
    store.arrays["labels/instances/0"][:5, :5] = 1
    with layer_source(path=str(tmp_path / "in.zarr")):
        viewer.add_image(img, name="big")
    panel, ctrl = widget.objects_panel, widget.objects
    panel.image.setCurrentText("big")
    panel.big_objects.setChecked(True)
    sent = {}

    def submit(kind, spec, arrays=None):
        sent.update(kind=kind, spec=spec)
        return _Job({"out": str(out), "blocks": 2, "skipped": 0, "seconds": 1.0,
                     "objects": 1, "rows": [{"id": 1, "class_name": "b", "area": 25}],
                     "cancelled": False})

    widget.objects.client.submit = submit
    panel.big_button.click()            # no model yet: a plain error, nothing sent
    assert notes.errors and not sent
    widget.slot.set(type("Ref", (), {"path": "m.pt", "class_names": ["a", "b"],
                                     "config": {}})(), "test")
    panel.big_button.click()
    qtbot.waitUntil(lambda: not ctrl.running, timeout=10000)
    assert sent["kind"] == "predict_store" and sent["spec"]["image"] == str(tmp_path / "in.zarr")
    assert sent["spec"]["out"] == str(out) and sent["spec"]["objects"]["min_size"] == 10
    assert panel.progress.value() == 2 and panel.table.rowCount() == 1
    layer = viewer.layers["big prediction (zarr)"]
    assert layer.data.shape == (40, 50) and int(layer.data[0, 0]) == 2
    assert int(viewer.layers["big objects (zarr)"].data[:5, :5].max()) == 1
