"""The srnet config (torch-free): defaults, cross-field rules, the pack key, and
``disc.from_run`` resolved through a ledger lookup at create time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import srsweep.kernels
from srsweep.backends.local import LocalBackend
from srsweep.cli import main
from srsweep.config import build
from srsweep.config import layered
from srsweep.errors import SpecError
from srsweep.kernels import Entry
from srsweep.kernels.srnet import KERNEL
from srsweep.kernels.srnet.config import SRNetConfig
from srsweep.kernels.srnet.config import pack_key
from srsweep.kernels.srnet.from_run import resolve
from srsweep.spec import load_spec

SWEEPS = Path(__file__).parents[3] / "sweeps"
F07_MASK = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))

# The 184 layout on a small budget: DSN 2x8 first half, 2x8 critic, 2 critic steps.
TINY: dict[str, Any] = {
    "device": "cpu",
    "epochs": 60,
    "log_freq": 25,
    "arch": {"hid_num": [2, 0], "hid_size": 8},
    "disc": {"hid_num": 2, "hid_size": 8, "iters": 2},
}


def cfg_of(**over: Any) -> SRNetConfig:
    cfg: SRNetConfig = build(SRNetConfig, layered(TINY, over), "test")
    return cfg


# --- config -----------------------------------------------------------------------


def test_defaults_are_the_184_base_run() -> None:
    cfg = SRNetConfig()
    assert (cfg.in_var, cfg.target_var, cfg.lat_var, cfg.fun_lib) == ("X07", "F07", "G07", "F07_v2")
    assert cfg.arch.hid_type == ("DSN", "MLP") and cfg.arch.lat_size == 3
    assert cfg.arch.hid_kwargs.alpha == F07_MASK
    assert (cfg.sd, cfg.sd_fun, cfg.lr, cfg.wd, cfg.log_freq, cfg.epochs) == (
        1.0,
        "linear",
        1e-4,
        1e-7,
        25,
        50_000,
    )
    d = cfg.disc
    assert (d.from_run, d.loss, d.hid_num, d.hid_size, d.gp) == (None, "bce", 2, 64, 0.0)
    assert cfg.cotrained and cfg.violations() == []


def test_kernel_is_registered() -> None:
    assert "srnet" in srsweep.kernels.names()
    assert srsweep.kernels.get("srnet") is KERNEL
    assert KERNEL.config is SRNetConfig and KERNEL.pack_key is pack_key
    assert KERNEL.resolve is resolve
    # the trainers are entry points, imported on their first call
    for entry, where in (
        (KERNEL.train, "solo:train"),
        (KERNEL.train_packed, "packed:train_packed"),
    ):
        assert isinstance(entry, Entry) and repr(entry) == f"Entry(srsweep.kernels.srnet.{where})"


def test_tuple_rule_resolves_scalars_and_pairs() -> None:
    p = cfg_of(arch={"hid_num": 2, "hid_type": "MLP", "hid_kwargs": {"alpha": None}}).pairs()
    assert p["hid_num"] == (2, 2) and p["hid_type"] == ("MLP", "MLP") and p["alpha"] == (None, None)
    p = cfg_of(arch={"hid_type": ["DSN", "DSN"], "hid_kwargs": {"alpha": [-1, None]}}).pairs()
    assert p["alpha"] == (-1, None)
    assert cfg_of().pairs()["alpha"] == (F07_MASK, F07_MASK)  # one mask: both halves


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"arch": {"hid_kwargs": {"alpha": [[1, 0], [0, 1]]}}},
            "arch.hid_kwargs.alpha: the DSN layers1 needs a mask of 3 row(s) of 2",
        ),
        ({"arch": {"hid_kwargs": {"alpha": 2}}}, "arch.hid_kwargs.alpha: an integer must be -1"),
        ({"arch": {"hid_type": "MLP"}, "a1": 0.1}, "a1: acts on a DSN mask"),
        ({"in_var": "X99"}, "in_var: must be one of"),
        ({"lat_var": "G11"}, "lat_var: G11 has 700 rows, but X07 has 1000"),
        ({"fun_lib": "F11_v1"}, "fun_lib: F11_v1 is written for X11, not X07"),
        ({"ext": ["grad", "grad"]}, "ext: entries must be distinct"),
        ({"disc": {"betas": [0.9, 1.0]}}, "disc.betas: each must be < 1"),
        ({"disc": {"iters": 0}}, "disc.iters: must be >= 1"),
        ({"sd_fun": "tanh"}, "sd_fun: must be one of 'linear', 'sigmoid', 'logsigmoid'"),
    ],
    ids=[
        "alpha-shape",
        "alpha-int",
        "a1-no-dsn",
        "in_var",
        "lat-rows",
        "lib-var",
        "ext-dup",
        "betas",
        "iters",
        "sd_fun",
    ],
)
def test_bad_configs_name_their_keys(over: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match="test: ") as err:
        cfg_of(**over)
    assert message in str(err.value)


def test_library_checks_only_apply_when_the_critic_is_co_trained() -> None:
    assert cfg_of(fun_lib="F11_v1", sd=0).violations() == []


# --- pack key -----------------------------------------------------------------------

# What a pack lets differ (seed 0 twice: one shared init); l1 is on in every one, as
# which regularisers are on is in the key.
VARY: list[dict[str, Any]] = [
    {"seed": 1, "lr": 1e-3, "sd_fun": "sigmoid", "l1": 0.01},
    {
        "seed": 2,
        "l1": 1e-9,
        "sd": 0.5,
        "sd_fun": "logsigmoid",
        "disc": {"lr": 1e-3, "betas": [0.5, 0.9]},
    },
    {"seed": 0, "wd": 1e-3, "sd": 2.0, "l1": 0.1, "disc": {"wd": 1e-3}},
]


@pytest.mark.parametrize("over", VARY)
def test_pack_key_ignores_what_a_pack_lets_differ(over: dict[str, Any]) -> None:
    base = {"l1": 0.5}  # l1 on in both, as VARY's trials have it
    assert pack_key(cfg_of(**layered(base, over))) == pack_key(cfg_of(**base))


@pytest.mark.parametrize(
    "over",
    [
        {"arch": {"hid_size": 16}},
        {"arch": {"hid_num": [3, 0]}},
        {"arch": {"lat_size": 2, "hid_kwargs": {"alpha": None}}},
        {"arch": {"hid_type": "MLP"}},
        {"epochs": 61},
        {"log_freq": 5},
        {"disc": {"hid_size": 16}},
        {"disc": {"iters": 3}},
        {"disc": {"loss": "wgan"}},
        {"sd": 0.0},
        {"l1": 0.1},
        {"ext": ["input"]},
        {"runtime": 5.0},
    ],
)
def test_pack_key_separates_shapes_and_schedules(over: dict[str, Any]) -> None:
    assert pack_key(cfg_of(**over)) != pack_key(cfg_of())


# --- disc.from_run: resolved before anything trains ---------------------------------

SdFile = Callable[..., Path]
SdRun = Callable[..., str]
CodeFile = tuple[Path, str, Path]  # tests/conftest.py's code_file: path, refused, marker


def from_run_error(ref: str, lookup: Any = None) -> str:
    """The one violation ``resolve`` refuses ``ref`` with."""
    with pytest.raises(SpecError) as err:
        resolve(cfg_of(disc={"from_run": ref}), lookup)
    (violation,) = err.value.violations
    assert violation.startswith(f"disc.from_run: {ref!r}: "), violation
    return violation


def test_from_run_naming_no_run(ledger: LocalBackend) -> None:
    msg = from_run_error("nosuchid", ledger.run)
    assert msg.startswith("disc.from_run: 'nosuchid': no run 'nosuchid' in ")
    assert "give the id of a finished sd run" in msg
    assert from_run_error("gone.joblib", ledger.run).endswith("gone.joblib: no such model file")
    assert from_run_error("gone.joblib").endswith("gone.joblib: no such model file")


def test_a_run_id_needs_a_ledger() -> None:
    msg = from_run_error("abc123")  # no lookup: only paths are accepted
    assert "give the id of a finished sd run from the ledger" in msg
    assert "or the path of its .joblib model file" in msg


def test_from_run_of_another_kernel(ledger: LocalBackend) -> None:
    rec = ledger.start_run("toy", {}, "test")
    assert f"run {rec.id} is a 'toy' run; it must be an 'sd' run" in (
        from_run_error(rec.id, ledger.run)
    )


def test_from_run_that_saved_no_model_file(ledger: LocalBackend, sd_run: SdRun) -> None:
    rid = sd_run(None, state="failed")
    assert from_run_error(rid, ledger.run).endswith(f"run {rid} (failed) saved no model file")


def test_from_run_resolves_a_ledger_run(
    ledger: LocalBackend, sd_file: SdFile, sd_run: SdRun
) -> None:
    path = sd_file()
    for rid in (sd_run(path), sd_run(path, config=False)):  # its config known, or not
        cfg = cfg_of(disc={"from_run": rid})
        assert cfg.violations() == []
        got = resolve(cfg, ledger.run)
        assert got == dataclasses.replace(
            cfg, disc=dataclasses.replace(cfg.disc, from_run=str(path))
        )


def test_from_run_path_is_taken_as_it_is(sd_file: SdFile, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sd_file()
    monkeypatch.chdir(path.parent)
    got = resolve(cfg_of(disc={"from_run": path.name}), None)  # relative: made absolute
    assert got.disc.from_run == str(path) and Path(got.disc.from_run).is_absolute()
    assert resolve(cfg_of(), None) == cfg_of()  # nothing named: nothing to do


def test_from_run_file_that_would_run_code_is_refused(
    ledger: LocalBackend, sd_run: SdRun, code_file: CodeFile
) -> None:
    """``resolve`` reads the file only with ``store.load``'s restricted unpickler: one
    that would run code is refused, named by path or by run id, and nothing runs."""
    path, refused, marker = code_file
    for ref in (str(path), sd_run(path, config=False)):
        msg = from_run_error(ref, ledger.run)
        assert msg.startswith(f"disc.from_run: {ref!r}: {path}: refused to load {refused}: ")
    assert not marker.exists()


def test_unreadable_file_is_refused_before_training(tmp_path: Path) -> None:
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"\x80\x04truncated")
    assert f"{bad}: cannot read model file (" in from_run_error(str(bad))


def test_recorded_critic_that_does_not_fit_is_refused(
    ledger: LocalBackend, sd_file: SdFile, sd_run: SdRun
) -> None:
    # d lat / dx per point: 2 channels from X07's 2 columns, but this SRNet uses only 1
    rid = sd_run(sd_file(ext=["grad"], ext_type="embed"))
    cfg = cfg_of(disc={"from_run": rid}, arch={"in_size": 1, "hid_type": "MLP"})
    with pytest.raises(SpecError) as err:
        resolve(cfg, ledger.run)
    msg = str(err.value)
    assert "disc.from_run: " in msg and "its critic takes 700 input(s) with 3 channel(s)" in msg
    assert "the latents of this SRNet give 700 with 2" in msg


def test_recorded_critic_that_saw_other_points_is_refused(
    ledger: LocalBackend, sd_file: SdFile, sd_run: SdRun
) -> None:
    # a study-153 critic: curves over the X10 training points, not X07's
    path = sd_file(in_var="X10", fun_lib="F10_v1", arch={"in_size": 1, "lat_size": 3})
    assert "over the X10 training points, but this SRNet's latents are curves over the X07" in (
        from_run_error(sd_run(path), ledger.run)
    )


# --- the study specs, at create time ---------------------------------------------------


def dry_run(spec: Path, results: Path) -> Any:
    return CliRunner().invoke(main, ["--results", str(results), "create", "--dry-run", str(spec)])


@pytest.mark.parametrize("name", ["srnet_lat_size", "srnet_sd_comb"])
def test_study_specs_pass_dry_run(name: str, tmp_path: Path) -> None:
    res = dry_run(SWEEPS / f"{name}.yaml", tmp_path)
    assert res.exit_code == 0, res.output
    assert f"{name}.yaml: valid (" in res.output and "kernel srnet" in res.output


def test_fixed_critic_spec_is_refused_at_create_until_filled_in(
    tmp_path: Path, sd_file: SdFile
) -> None:
    template = SWEEPS / "srnet_fixed_critic.yaml"
    res = dry_run(template, tmp_path)
    assert res.exit_code == 2
    assert "a trial of this sweep would be refused: disc.from_run: 'FILL_IN_SD_RUN_ID'" in (
        res.stderr
    )
    critic = sd_file(in_var="X11", fun_lib="F11_v1", arch={"in_size": 1, "lat_size": 5})
    filled = tmp_path / "filled.yaml"
    filled.write_text(template.read_text().replace("FILL_IN_SD_RUN_ID", str(critic)))
    res = dry_run(filled, tmp_path)
    assert res.exit_code == 0, res.output


def test_fixed_critic_spec_finds_its_run_through_the_lookup(
    tmp_path: Path, ledger: LocalBackend, sd_file: SdFile, sd_run: SdRun
) -> None:
    template = (SWEEPS / "srnet_fixed_critic.yaml").read_text()
    spec = tmp_path / "spec.yaml"
    spec.write_text(template.replace("FILL_IN_SD_RUN_ID", "nosuchid"))
    with pytest.raises(SpecError, match="refused: disc.from_run: 'nosuchid': no run 'nosuchid'"):
        load_spec(spec, lookup=ledger.run)
    x11 = sd_file(in_var="X11", fun_lib="F11_v1", arch={"in_size": 1, "lat_size": 5})
    spec.write_text(template.replace("FILL_IN_SD_RUN_ID", sd_run(x11)))
    assert load_spec(spec, lookup=ledger.run).kernel is KERNEL
    # an X07 critic for this X11 study is refused from its recorded config
    spec.write_text(template.replace("FILL_IN_SD_RUN_ID", sd_run(sd_file("x07"))))
    with pytest.raises(SpecError, match="over the X07 training points, but this SRNet's latents"):
        load_spec(spec, lookup=ledger.run)
    with pytest.raises(SpecError, match="from the ledger"):  # no lookup: a path, not an id
        load_spec(spec)


def test_cli_refuses_a_critic_file_that_would_run_code(tmp_path: Path, code_file: CodeFile) -> None:
    """``run`` and ``create`` (``--dry-run`` or not) refuse it with exit 2 before any
    run or sweep exists, naming the file and the type; nothing of it runs."""
    path, refused, marker = code_file
    results = tmp_path / "results"
    why = f"disc.from_run: '{path}': {path}: refused to load {refused}: "

    def cli(*args: str) -> Any:
        return CliRunner().invoke(main, ["--results", str(results), *args])

    res = cli("run", "srnet", "--set", f"disc.from_run={path}")
    assert res.exit_code == 2 and res.stderr.startswith(f"Error: --set: {why}"), res.output
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        (SWEEPS / "srnet_fixed_critic.yaml").read_text().replace("FILL_IN_SD_RUN_ID", str(path))
    )
    for create in (["create", "--dry-run"], ["create"]):
        res = cli(*create, str(spec))
        assert res.exit_code == 2, res.output
        assert f"a trial of this sweep would be refused: {why}" in res.stderr
    backend = LocalBackend(results)
    assert backend.runs(None) == [] and backend.sweeps() == []
    backend.close()
    assert not marker.exists()
