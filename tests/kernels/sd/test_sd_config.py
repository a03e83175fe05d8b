"""The ``sd`` kernel's record and config (``sd.__init__``, ``sd.config``): defaults, checks,
pack keys, and that none of it imports torch."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import srsweep.kernels
from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import SpecError
from srsweep.kernels import Entry
from srsweep.kernels.sd import KERNEL
from srsweep.kernels.sd import SDConfig
from srsweep.kernels.sd.config import pack_key

ROOT = Path(__file__).resolve().parents[3]

# the packed tests' trials: a 2x16 critic, 12 epochs logged every 5
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 12,
    "log_freq": 5,
    "disc": {"hid_num": 2, "hid_size": 16},
}


def cfg_of(**over: Any) -> SDConfig:
    cfg: SDConfig = build(SDConfig, layered(TINY, over), "test")
    return cfg


# --- config ---------------------------------------------------------------------------


def test_defaults_are_study_153_base() -> None:
    cfg = SDConfig()
    assert (cfg.arch.lat_size, cfg.arch.hid_num, cfg.arch.hid_size) == (5, (2, 0), 32)
    d = cfg.disc
    assert (d.hid_num, d.hid_size, d.lr, d.wd, d.iters, d.gp, d.loss) == (
        6,
        128,
        1e-4,
        1e-7,
        5,
        1e-5,
        "wgan",
    )
    assert (cfg.epochs, cfg.log_freq, cfg.avg_hor, cfg.in_var, cfg.fun_lib) == (
        100_000,
        25,
        500,
        "X10",
        "F10_v1",
    )
    assert SDConfig().violations() == []


def test_kernel_is_registered() -> None:
    assert srsweep.kernels.get("sd") is KERNEL
    assert (KERNEL.metric, KERNEL.goal, KERNEL.curve) == ("avg_acc", "maximize", "acc")


def test_a_155_ext2_config_builds() -> None:
    cfg = build(
        SDConfig,
        {
            "ext": ["grad"],
            "ext_type": "embed",
            "ext_size": 1,
            "disc": {"hid_num": [2, 4], "hid_size": [64, 512]},
        },
        "test",
    )
    assert cfg.disc.hid_num == (2, 4) and cfg.ext == ("grad",) and cfg.ext_channels == 1


@pytest.mark.parametrize(
    ("over", "key"),
    [
        ({"disc": {"lrr": 1e-3}}, "disc.lrr: unknown key"),
        ({"disc": {"iters": "five"}}, "disc.iters: must be int"),
        ({"disc": {"lr": 0}}, "disc.lr: must be > 0"),
        ({"disc": {"lr": -1e-3}}, "disc.lr: must be > 0"),
        ({"ext": ["foo"]}, "ext: must be a list of one of 'input', 'grad'"),
        ({"ext": ["grad"], "ext_size": 2}, "ext_size: must equal len(ext) * arch.in_size = 1"),
        ({"ext": ["grad", "grad"]}, "ext: entries must be distinct"),
        ({"disc": {"betas": [0.9, 1.0]}}, "disc.betas: each must be < 1"),
        ({"arch": {"lat_size": 0}}, "arch.lat_size: must be >= 1"),
        ({"fun_lib": "F07_v2"}, "fun_lib: F07_v2 is written for X07"),
        ({"fun_lib": "F99"}, "fun_lib: must be one of F07_v2"),
        ({"in_var": "X99"}, "in_var: must be one of"),
        ({"arch": {"in_size": 3}}, "arch.in_size: X10 has 2 column(s), but got 3"),
        ({"arch": {"in_size": 2}, "ext": ["grad"]}, "ext: 'grad' needs one derivative"),
        ({"shuffle": False}, "arch.lat_size: without shuffle at most the 1 line(s)"),
    ],
    ids=[
        "unknown",
        "type",
        "lr0",
        "lr-neg",
        "ext-foo",
        "ext_size",
        "ext-dup",
        "betas",
        "lat0",
        "lib-var",
        "lib-name",
        "in_var",
        "in_size",
        "grad-derivs",
        "no-shuffle",
    ],
)
def test_bad_configs_name_the_dotted_key(over: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as err:
        build(SDConfig, over, "test")
    assert f"test: {key}" in str(err.value)


@pytest.mark.slow  # a fresh interpreter: ~3 s
def test_record_and_config_checks_import_no_torch() -> None:
    # `srsweep create`, `kernels` and `status` read the record and check configs (the
    # function library's metadata included) without training
    code = (
        "import sys\n"
        "import srsweep.kernels\n"
        "from srsweep.config import build\n"
        "from srsweep.spec import load_spec\n"
        "k = srsweep.kernels.get('sd')\n"
        "build(k.config, {'ext': ['grad'], 'shuffle': False, 'arch': {'lat_size': 1}}, 'x')\n"
        "load_spec('sweeps/sd_study.yaml')\n"
        "k.pack_key(k.config())\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --- pack keys ---------------------------------------------------------------------------


def test_kernel_declares_packing() -> None:
    assert KERNEL.pack_key is pack_key
    named = {}
    for entry in (KERNEL.train, KERNEL.train_packed):
        assert isinstance(entry, Entry)  # imported on first call, not with the record
        assert callable(getattr(importlib.import_module(entry.module), entry.name))
        named[entry.name] = entry.module
    assert named == {
        "train": "srsweep.kernels.sd.solo",
        "train_packed": "srsweep.kernels.sd.packed",
    }


@pytest.mark.parametrize(
    "over",
    [
        {"seed": 5},
        {"disc": {"lr": 1e-2, "wd": 0.0, "betas": [0.5, 0.9]}},
        {"disc": {"gp": 0.0, "loss": "bce"}},
        {"arch": {"lat_size": 10}, "disc": {"iters": 7}},
        {"avg_hor": 3},
        {"ext_type": "stack"},  # without extras the critic is the same
        {"disc": {"hid_num": [9, 2], "hid_size": [3, 16]}},  # the embedding is off
    ],
    ids=["seed", "optimiser", "loss", "lat-iters", "avg_hor", "ext_type", "embed-sizes"],
)
def test_pack_key_ignores_what_a_pack_lets_differ(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) == pack_key(cfg_of())


@pytest.mark.parametrize(
    "over",
    [
        {"disc": {"hid_size": 32}},
        {"disc": {"hid_num": 3}},
        {"ext": ["grad"]},
        {"epochs": 13},
        {"log_freq": 4},
        {"runtime": 5.0},
        {"iter_sample": True},
        {"arch": {"hid_size": 8}},
        {"device": "cuda"},
    ],
    ids=[
        "hid_size",
        "hid_num",
        "ext",
        "epochs",
        "log_freq",
        "runtime",
        "iter_sample",
        "gen-size",
        "device",
    ],
)
def test_pack_key_separates_shapes_and_schedules(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) != pack_key(cfg_of())
