"""A run inside a time budget: the deadline that stops the training loops, the presets, and
``python -m latentkit.recipes all --preset gpu --out DIR`` (its checks, its folder, its record); CPU only."""

from __future__ import annotations

import inspect
import json
import sys
import time
import types

import pytest
import torch

from latentkit.paths import data_dir
from latentkit.quality import Row
from latentkit.recipes import __main__ as recipes_main
from latentkit.recipes import autoencoder as ae_recipe
from latentkit.recipes import common
from latentkit.recipes.presets import BUDGETS, PRESETS, Planned

ORGANISMS = ("autoencoder", "vae", "gan", "unet", "dit")


SHIPPED_DATA = data_dir()  # before any test points LATENTKIT_DATA elsewhere


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """A small ``data/`` and cache in ``tmp_path`` (LATENTKIT_DATA, LATENTKIT_CACHE point at them)."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    (data / "probes").mkdir(parents=True)
    (data / "probes" / "config.json").write_text('{"shipped": true}')
    cache.mkdir()
    monkeypatch.setenv("LATENTKIT_DATA", str(data))
    monkeypatch.setenv("LATENTKIT_CACHE", str(cache))
    return data, cache


@pytest.fixture
def small_codes(dirs, monkeypatch):
    """The autoencoder recipe trains on 64 random codes (not the 65,536 cached ones), through the shipped
    codec (linked into the small ``data/``)."""
    (dirs[0] / "tiny-sd").mkdir()
    (dirs[0] / "tiny-sd" / "vae").symlink_to(SHIPPED_DATA / "tiny-sd" / "vae")
    codes = torch.randn(64, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.rand(64, 16, 16, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(ae_recipe, "picture_codes", lambda: codes)
    monkeypatch.setattr(ae_recipe, "picture_masks", lambda: masks)


# ---------------------------------------------------------------------------------------------------------
# The deadline


def test_out_of_time_is_false_outside_a_deadline_and_true_once_it_has_passed():
    assert not common.out_of_time() and common.time_left() is None
    with common.deadline(None):
        assert not common.out_of_time() and common.time_left() is None
    with common.deadline(3600):
        assert not common.out_of_time() and 3500 < common.time_left() <= 3600
        with common.deadline(0):  # an inner deadline: the sooner one counts
            assert common.out_of_time()
        with common.deadline(7200):  # never later than the outer one
            assert common.time_left() <= 3600
        assert not common.out_of_time()
    assert not common.out_of_time() and common.time_left() is None


def test_a_deadline_stops_the_autoencoder_at_the_step_reached_and_it_resumes_exactly(small_codes, capsys):
    name = ae_recipe.checkpoint_name(2)
    straight, _ = ae_recipe.train(latent_dim=2, steps=4, batch_size=8, device="cpu", fresh=True)
    assert common.load_checkpoint(name) == 4  # no deadline: every step
    assert "out of time" not in capsys.readouterr().out
    with common.deadline(0):  # already passed: the loop stops after its first step
        ae_recipe.train(latent_dim=2, steps=4, batch_size=8, device="cpu", fresh=True)
    assert common.load_checkpoint(name) == 1
    assert "autoencoder_2: out of time, stopped at step 1 of 4" in capsys.readouterr().out
    resumed, _ = ae_recipe.train(latent_dim=2, steps=4, batch_size=8, device="cpu")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # the stop's checkpoint is a regular one


def test_the_diffusion_loops_stop_where_after_step_says(dirs, capsys):
    model, since = torch.nn.Linear(2, 2), (time.time(), 0)
    with common.deadline(0):
        assert common.after_step("loop", 6, 10, [1.0], None, since, model=model)
        assert common.load_checkpoint("loop") == 7  # saved at the step reached
        assert not common.after_step("loop", 9, 10, [1.0], None, since, model=model)  # the last: done
    assert "loop: out of time, stopped at step 7 of 10" in capsys.readouterr().out
    common.clear_checkpoint("loop")
    assert not common.after_step("loop", 6, 10, [1.0], None, since, model=model)  # no deadline
    assert common.load_checkpoint("loop") == 0  # and no checkpoint between the regular ones


# ---------------------------------------------------------------------------------------------------------
# The presets


def test_the_gpu_preset_trains_the_five_organisms_with_larger_batches_inside_the_budget():
    import importlib

    gpu = PRESETS["gpu"]
    assert tuple(planned.recipe for planned in gpu) == ORGANISMS
    assert all(planned.share > 0 for planned in gpu) and sum(planned.share for planned in gpu) <= 0.9
    assert BUDGETS["gpu"] <= 540  # nine minutes
    for planned in gpu:
        main = importlib.import_module(f"latentkit.recipes.{planned.recipe}").main
        inspect.signature(main).bind(device="cuda", **planned.kwargs)  # main takes every argument
        cpu_batch = inspect.signature(main).parameters["batch_size"].default
        assert planned.kwargs["batch_size"] > cpu_batch
    for name in ("unet", "dit"):
        planned = next(p for p in gpu if p.recipe == name)
        shipped = importlib.import_module(f"latentkit.recipes.{name}").SHIPPED_STEPS
        assert planned.kwargs["from_shipped"] and planned.kwargs["steps"] > shipped  # a new stage


def test_the_cpu_preset_is_every_recipe_with_its_defaults():
    assert tuple(planned.recipe for planned in PRESETS["cpu"]) == recipes_main.ORDER
    assert all(planned.kwargs == {} and planned.share is None for planned in PRESETS["cpu"])
    assert BUDGETS["cpu"] is None


# ---------------------------------------------------------------------------------------------------------
# The command's checks: a clear error, nothing written


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        recipes_main.main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_out_refuses_a_folder_that_is_not_a_previous_run_and_writes_nothing(dirs, tmp_path, capsys):
    data, _ = dirs
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    err = _refused(["all", "--preset", "gpu", "--device", "cpu", "--out", str(busy)], capsys)
    assert "not empty" in err and "run.json" in err and "absent or empty" in err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    assert "is a file" in _refused(["all", "--out", str(busy / "notes.txt")], capsys)
    assert "inside" in _refused(["all", "--out", str(data / "run")], capsys)
    assert not (data / "run").exists()


def test_the_gpu_preset_without_cuda_says_to_pass_device_cpu(dirs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    err = _refused(["all", "--preset", "gpu", "--out", str(out)], capsys)
    assert "--preset gpu needs a GPU (torch sees none); pass --device cpu to try it on the CPU" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, says",
    [
        (["all", "--preset", "gpu"], "add --out DIR"),
        (["all", "--budget", "60"], "add --out DIR"),
        (["vae", "--out", "x"], "apply to 'all'"),
        (["all", "--out", "x", "--fresh"], "--fresh does not apply with --out"),
        (["all", "--out", "x", "--budget", "0"], "must be positive"),
    ],
)
def test_options_that_do_not_go_together_are_refused(argv, says, dirs, capsys):
    assert says in _refused(argv, capsys)


# ---------------------------------------------------------------------------------------------------------
# The run's folder


def test_the_out_folder_gets_a_copy_of_data_and_the_cached_inputs_but_no_checkpoints(dirs, tmp_path):
    data, cache = dirs
    (cache / "tiny-sd-parts" / "vae").mkdir(parents=True)
    (cache / "checkpoints").mkdir()
    inputs = ["picture_codes_64_7.pt", "picture_masks_64_7.pt", "tiny-sd-parts/precomputed_12.pt"]
    others = ["checkpoints/autoencoder_3.pt", "tiny-sd-parts/vae/config.json", "notes.pt"]
    for name in inputs + others:
        (cache / name).write_text(name)
    out = tmp_path / "run"
    assert recipes_main.prepare_out(out, data, cache) is False  # a new run
    assert (out / "data" / "probes" / "config.json").read_text() == '{"shipped": true}'
    for name in inputs:
        assert (out / "cache" / name).read_text() == name
    for name in others:
        assert not (out / "cache" / name).exists()

    (out / "data" / "probes" / "config.json").write_text("exported by the run")
    (out / recipes_main.RUN_FILE).write_text("{}")
    assert recipes_main.prepare_out(out, data, cache) is True  # a previous run's: resumed
    assert (out / "data" / "probes" / "config.json").read_text() == "exported by the run"

    fresh = tmp_path / "cpu-run"
    recipes_main.prepare_out(fresh, data, cache, inputs=False)  # a preset that rebuilds its inputs
    assert (fresh / "data" / "probes").is_dir() and not (fresh / "cache").exists()


def test_a_run_trains_its_preset_inside_the_folder_and_records_it(dirs, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_main(steps: int = 10, device: str = "auto", batch_size: int = 1) -> None:
        seen.update(data=data_dir(), left=common.time_left(), device=device, batch_size=batch_size)
        common.save_checkpoint("fake", steps)
        (data_dir() / "fake").mkdir()
        (data_dir() / "fake" / "weights.txt").write_text("trained")

    fake = types.ModuleType("latentkit.recipes.fake")
    fake.NAME, fake.STEPS, fake.main = "fake", 10, fake_main
    monkeypatch.setitem(sys.modules, "latentkit.recipes.fake", fake)
    monkeypatch.setitem(PRESETS, "test", (Planned("fake", {"steps": 5, "batch_size": 2}, 0.5),))
    met = Row("fake", "works", 1.0, 0.5, True)
    monkeypatch.setattr(recipes_main, "measure_quality", lambda device: [met])

    out = tmp_path / "run"
    recipes_main.run_into(out, "test", budget=100, device="cpu")
    assert seen["data"] == out / "data" and seen["device"] == "cpu" and seen["batch_size"] == 2
    assert 0 < seen["left"] <= 50  # its share of the budget
    assert (out / "data" / "fake" / "weights.txt").read_text() == "trained"
    assert (out / "data" / "probes" / "config.json").exists()  # beside the copy of data/
    assert (out / "cache" / "checkpoints" / "fake.pt").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["preset"] == "test" and run["budget_s"] == 100 and run["torch"] == torch.__version__
    record = run["recipes"]["fake"]
    assert (record["steps_start"], record["steps_reached"], record["steps_total"]) == (0, 5, 5)
    assert record["seconds_per_step"] > 0
    assert "1 of 1 targets met" in (out / "quality.md").read_text()
    assert "[fake]" in capsys.readouterr().out


def test_a_checkpoint_of_another_design_is_a_one_line_error_that_says_what_to_do(dirs):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    common.save_checkpoint("design", 5, model=model, opt=opt)
    wider = torch.nn.Linear(3, 2)
    with pytest.raises(
        ValueError, match=r"does not fit this run's 'model' \(.*size mismatch.*\): another design"
    ) as error:
        common.load_checkpoint("design", model=wider)
    assert "\n" not in str(error.value) and "--fresh" in str(error.value)
    more = torch.optim.Adam([*model.parameters(), torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match=r"does not fit this run's 'opt'"):
        common.load_checkpoint("design", model=model, opt=more)
    with pytest.raises(KeyError, match="has no entry 'ema'"):
        common.load_checkpoint("design", model=model, ema=model)
    assert common.load_checkpoint("design", model=torch.nn.Linear(2, 2)) == 5  # the same design resumes


@pytest.mark.slow
def test_the_codec_recipe_runs_each_decoder_stage_from_the_one_before_and_resumes(dirs, monkeypatch, capsys):
    """``sd_vae.main``: the whole VAE, then every decoder stage, each from the last export, each with its
    own checkpoint; the encoder (so every latent) is the first stage's throughout; run again, it resumes
    every stage from its checkpoint and exports the same weights."""
    from latentkit.recipes import sd_vae

    monkeypatch.setattr(sd_vae, "DECODER_STEPS", 2)
    monkeypatch.setattr(sd_vae, "psnr", lambda vae: 0.0)  # 256 round trips per stage: not what is tested
    monkeypatch.setattr(sd_vae, "measure_scaling_factor", lambda vae, device: 0.5)
    sd_vae.main(steps=2, device="cpu")
    stages = range(1, sd_vae.DECODER_STAGES + 1)
    names = ("tiny_sd_vae", *(sd_vae.decoder_checkpoint(stage) for stage in stages))
    assert len(set(names)) == len(names) >= 3
    states = {name: torch.load(common.checkpoint_path(name))["model"] for name in names}
    assert all(torch.load(common.checkpoint_path(name))["step"] == 2 for name in names)
    exported = sd_vae.load_trained().state_dict()
    for key, value in exported.items():
        if key.startswith(("encoder.", "quant_conv.")):
            assert all(torch.equal(value, states[name][key]) for name in names), key
    decoder_keys = [key for key in exported if key.startswith("decoder.")]
    assert all(torch.equal(exported[k], states[names[-1]][k]) for k in decoder_keys)
    for before, after in zip(names[:-1], names[1:], strict=True):  # each stage from the one before
        assert not all(torch.equal(states[before][k], states[after][k]) for k in decoder_keys)
    out = capsys.readouterr().out
    assert all(f"sd_vae decoder {stage}: 2 steps" in out for stage in stages)

    sd_vae.main(steps=2, device="cpu")  # every stage finished: nothing trains, the same weights come out
    assert "steps in" not in capsys.readouterr().out
    again = sd_vae.load_trained().state_dict()
    assert all(torch.equal(again[key], exported[key]) for key in exported)
    with pytest.raises(ValueError, match="stage must be a whole number >= 1"):
        sd_vae.decoder_checkpoint(0)
