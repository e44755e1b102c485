"""Block-wise prediction into OME-Zarr: equal to the in-memory result, cluster, resume."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr
from bd_helpers import disc_image, write_ome

import napari_unet_studio as nus
from napari_unet_studio.bigdata import iter_predict_store, predict_store
from napari_unet_studio.bigdata.blocks import plan_blocks, tile_region
from napari_unet_studio.core.config import TileConfig
from napari_unet_studio.core.errors import DataError
from napari_unet_studio.core.infer import tile_positions

TILE = TileConfig(tile=48, overlap=0.25, batch_size=3)


@pytest.mark.parametrize("size", [40, 48, 100, 333])
def test_tile_region_holds_exactly_the_whole_grids_tiles(size):
    t, ov = 48, 12
    grid = tile_positions(size, t, ov)
    for lo in range(0, size, 17):
        hi = min(size, lo + 31)
        r0, r1 = tile_region(size, lo, hi, t, ov)
        assert r0 <= lo and hi <= r1
        local = [r0 + p for p in tile_positions(r1 - r0, t, ov)]
        assert local == [p for p in grid if p < hi and p + t > lo] or size <= t


def test_blocks_are_whole_chunks():
    blocks = plan_blocks((1, 300, 200), (1, 64, 64), block=130)
    assert len(blocks) == 3 * 2  # 128-pixel blocks (two chunks), the last ones shorter
    assert all(b.y[0] % 64 == 0 and b.x[0] % 64 == 0 for b in blocks)
    assert blocks[-1].y == (256, 300) and blocks[-1].x == (128, 200)


def test_blockwise_equals_in_memory_prediction_across_block_borders(tmp_path, disc_model):
    img = disc_image((333, 270), 40, 1)
    write_ome(tmp_path / "in.zarr", img, chunks=(32, 32), scale={"y": 0.4, "x": 0.4})
    ref, pref = nus.predict(disc_model, img, tile=TILE, probabilities=True, threads=1)
    res = predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr", tile=TILE,
                        block=96, probabilities=True, threads=1)
    assert res.blocks == 4 * 3 and res.skipped == 0
    assert len(res.phase_seconds) == 12
    assert all(p["read"] >= 0 and p["predict"] > 0 and p["output"] > 0 for p in res.phase_seconds)
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(np.asarray(root["labels/classes/0"]), ref)
    np.testing.assert_array_equal(np.asarray(root["0"]), ref)
    np.testing.assert_allclose(np.asarray(root["probabilities/0"]), pref, rtol=0, atol=1e-6)
    assert 0.02 < (ref == 2).mean() < 0.5  # the model finds the discs: a real comparison
    np.testing.assert_array_equal(res.class_counts[1:], np.bincount(ref.ravel())[1:])


def test_blockwise_stack_equals_in_memory(tmp_path, disc_model):
    vol = np.stack([disc_image((90, 110), 8, s) for s in range(3)])
    write_ome(tmp_path / "v.zarr", vol, axes="zyx", chunks=(2, 32, 32))
    ref = nus.predict(disc_model, vol, tile=TILE, threads=1)
    predict_store(disc_model, tmp_path / "v.zarr", tmp_path / "o.zarr", tile=TILE, block=64,
                  threads=1)
    out = np.asarray(zarr.open_group(str(tmp_path / "o.zarr"), mode="r")["labels/classes/0"])
    np.testing.assert_array_equal(out, ref)


def test_local_cluster_with_two_workers(tmp_path, disc_model):
    pytest.importorskip("distributed")
    img = disc_image((200, 160), 20, 2)
    write_ome(tmp_path / "in.zarr", img, chunks=(64, 64))
    ref = nus.predict(disc_model, img, tile=TILE, threads=1)
    res = predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr", tile=TILE,
                        block=64, workers=2, objects=True)
    out = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(np.asarray(out["labels/classes/0"]), ref)
    assert res.blocks == 4 * 3 and len(res.max_rss_mb) == 12
    inst = np.asarray(out["labels/instances/0"])
    ref_inst, _ = nus.find_instances(ref)
    assert res.objects == int(ref_inst.max()) == int(inst.max()) > 5


def test_resume_after_an_interrupted_run_recomputes_nothing_written(tmp_path, disc_model):
    img = disc_image((256, 192), 25, 3)
    write_ome(tmp_path / "in.zarr", img, chunks=(64, 64))
    ref = nus.predict(disc_model, img, tile=TILE, threads=1)
    stop = threading.Event()
    gen = iter_predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr",
                             tile=TILE, block=64, threads=1, stop=stop, objects=True)
    for p in gen:
        if p.done == 5:
            stop.set()
    # the run ended early: the 5 blocks reported (and the one running then) are written
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    partial = np.asarray(root["0"])
    assert 0 < (partial > 0).mean() < 1
    res = predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr", tile=TILE,
                        block=64, threads=1, objects=True)
    assert 5 <= res.skipped <= 6 and len(res.block_seconds) == 12 - res.skipped
    np.testing.assert_array_equal(np.asarray(root["labels/classes/0"]), ref)
    ref_inst, _ = nus.find_instances(ref)
    assert res.objects == int(ref_inst.max())
    again = predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr", tile=TILE,
                          block=64, threads=1, objects=True)
    assert again.skipped == 12 and again.block_seconds == [] and again.objects == res.objects
    # another model or other settings never reuse the store silently
    with pytest.raises(DataError, match="does not hold"):
        predict_store(disc_model, tmp_path / "in.zarr", tmp_path / "out.zarr",
                      tile=TileConfig(tile=64), block=64, threads=1, objects=True)
