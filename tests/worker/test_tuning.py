"""Worker decisions without a process: thread tuning, preview tiles, broken GPUs."""

from __future__ import annotations

from napari_unet_studio.worker.tuning import ThreadTuner


def drive(tuner: ThreadTuner, seconds_for: dict[int, float], steps: int) -> list[int]:
    used = []
    for _ in range(steps):
        used.append(tuner.current)
        tuner.observe(seconds_for[tuner.current])
    return used


def test_a_much_slower_count_costs_one_step_per_trial():
    tuner = ThreadTuner(2, window=3, stay=10, max_stay=40)
    used = drive(tuner, {2: 1.0, 1: 0.2}, 60)  # a busy machine: two threads are slow
    # one thread first (first step not counted, 3 measured), then a trial of two threads
    # that ends after one slow step; it was 5x slower (4 steps lost), so the next trial
    # waits (5 - 1) / 5 % = 80 steps, capped at max_stay
    assert used[:5] == [1, 1, 1, 1, 2]
    assert tuner.medians == {1: 0.2}
    assert used[5:45] == [1] * 40 and used[45] == 2
    assert used[46:60] == [1] * 14
    assert used.count(2) == 2


def test_lost_trials_cost_at_most_the_overhead():
    tuner = ThreadTuner(2, window=6, stay=40, max_stay=100_000, overhead=0.05)
    seconds = {1: 0.45, 2: 3.8}  # measured on the loaded machine (docs/worker.md)
    used = drive(tuner, seconds, 5000)
    total = sum(seconds[n] for n in used)
    lost = sum(seconds[2] - seconds[1] for n in used if n == 2)
    assert lost / total < 0.05 and used.count(2) <= 8  # 6 trials in 5000 steps


def test_two_threads_win_when_they_are_faster():
    tuner = ThreadTuner(2, window=3, stay=10)
    used = drive(tuner, {2: 0.1, 1: 0.3}, 30)  # an idle machine
    assert used[:7] == [1, 1, 1, 1, 2, 2, 2]  # a full trial: two threads win
    assert tuner.medians == {1: 0.3, 2: 0.1}
    # they stay 10 steps; the trial of one thread is aborted after one step (stay 20)
    assert used[7:17] == [2] * 10 and used[17] == 1 and used[18:30] == [2] * 12


def test_follows_a_change_of_load():
    tuner = ThreadTuner(2, window=3, stay=10, max_stay=40)
    drive(tuner, {2: 0.1, 1: 0.2}, 30)  # idle: two threads win
    assert tuner.current == 2
    used = drive(tuner, {2: 1.0, 1: 0.2}, 60)  # other programs started
    assert tuner.current == 1 and used[-30:].count(2) <= 1


def test_a_slowdown_during_a_long_stay_is_noticed():
    tuner = ThreadTuner(2, window=3, stay=500, max_stay=500)
    drive(tuner, {2: 0.1, 1: 0.2}, 10)  # two threads win and would stay 500 steps
    assert tuner.current == 2
    used = drive(tuner, {2: 1.0, 1: 0.2}, 8)  # busy: the rolling median of 3 notices it
    assert used[:3] == [2, 2, 1] and tuner.current == 1


def test_close_counts_need_a_full_window():
    tuner = ThreadTuner(2, window=3, stay=10, abort=1.5)
    drive(tuner, {2: 0.22, 1: 0.20}, 8)  # two threads 10 % slower: no abort, full trial
    assert tuner.medians == {1: 0.20, 2: 0.22} and tuner.current == 1


def test_one_core_means_no_tuning():
    tuner = ThreadTuner(1)
    assert not tuner.enabled
    assert drive(tuner, {1: 1.0}, 5) == [1] * 5 and tuner.switches == 0


def test_previews_use_one_tile_up_to_1024_pixels():
    from napari_unet_studio.core.config import preview_tile

    assert (preview_tile((512, 512), 1).tile, preview_tile((512, 512), 1).overlap) == (512, 0.0)
    assert preview_tile((500, 700), 1).tile == 704  # a multiple of 16 covering the plane
    assert preview_tile((300, 200, 3), 3).tile == 304  # channels last are not pixels
    assert preview_tile((40, 44), 1).tile == 48
    big = preview_tile((2048, 1500), 1)
    assert (big.tile, big.overlap) == (512, 0.125)


def test_gpu_errors_that_break_the_device_restart_the_worker():
    from napari_unet_studio.worker.server import device_broken

    assert device_broken(RuntimeError("CUDA error: device-side assert triggered"))
    assert device_broken(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not device_broken(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not device_broken(ValueError("CUDA error"))  # not from torch
    assert not device_broken(RuntimeError("shapes do not match"))
