"""``disc.from_run``: the saved ``sd`` run a fixed critic comes from, resolved to its
model file's path (and the file vetted by ``store.load``) before training, torch-free
and without opening a ledger.

``resolve`` is the kernel's ``Kernel.resolve``: its caller hands it a ``Lookup`` into
the ledger it runs on (``create`` for its probe trials, the agent before a trial
trains). ``critic_misfit`` is the one fit rule, applied here to the run's recorded
config and at training start (``critic.py``) to the critic's saved weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import NoReturn

import numpy as np

from srsweep import store
from srsweep.errors import NotFoundError
from srsweep.errors import SpecError
from srsweep.errors import SrsweepError
from srsweep.kernels._base import Lookup
from srsweep.kernels.common import data
from srsweep.kernels.srnet.config import SRNetConfig

__all__ = ["resolve", "critic_misfit"]

_SD_KEYS = ("in_var", "ext", "ext_type", "arch", "disc")  # what the fit check reads


def resolve(cfg: SRNetConfig, lookup: Lookup | None) -> SRNetConfig:
    """``cfg`` with ``disc.from_run`` replaced by the absolute path of the sd run's model
    file (``cfg`` itself when it names none).

    A value ending in ``.joblib``, or naming an existing file, is that file; anything
    else is a run id, found with ``lookup``. Where the run's config is in its record, its
    critic is checked to fit this SRNet's latents already here (``critic_misfit``). The
    file is read here only with ``store.load``'s restricted unpickler, so that one that
    would run code (or cannot be read) is refused before anything trains; whether it
    is an ``sd`` run's, with a critic that fits, is checked when training starts.

    Raises:
        SpecError: no such file or run, the run is not an ``sd`` run, it saved no model
            file, the file is unreadable or holds types srsweep does not unpickle, its
            critic does not fit, or a run id is given without a ``lookup``; the one
            violation names ``disc.from_run``.
    """
    ref = cfg.disc.from_run
    if ref is None:
        return cfg
    path = Path(ref)
    hp: dict[str, Any] = {}
    if path.suffix != ".joblib" and not path.is_file():
        if lookup is None:
            _refuse(
                ref,
                "no ledger to look a run id up in here; give the id of a finished sd run "
                "from the ledger the sweep or run is in, or the path of its .joblib model file",
            )
        try:
            record = lookup(ref)
        except NotFoundError as e:
            _refuse(
                ref,
                f"no run {ref!r} in the ledger ({e}); give the id of a finished sd run "
                "(`srsweep run sd ...`, same --results or SRSWEEP_RESULTS) or the path of "
                "its .joblib model file",
            )
        if record.kernel != "sd":
            _refuse(ref, f"run {ref} is a {record.kernel!r} run; it must be an 'sd' run")
        if not record.model_path:
            _refuse(ref, f"run {ref} ({record.state}) saved no model file")
        path = Path(record.model_path)
        if all(k in record.config for k in _SD_KEYS):
            hp = record.config
    if not path.is_file():
        _refuse(ref, f"{path}: no such model file")
    try:
        store.load(path)
    except SrsweepError as e:  # UnsafeFileError, CorruptFileError: they name the file
        _refuse(ref, str(e))
    if hp and (why := critic_misfit(cfg, hp)):
        _refuse(ref, why)
    return replace(cfg, disc=replace(cfg.disc, from_run=str(path.absolute())))


def _refuse(ref: str, why: str) -> NoReturn:
    raise SpecError("srnet", [f"disc.from_run: {ref!r}: {why}"])


def critic_misfit(
    cfg: SRNetConfig, hp: dict[str, Any], shape: tuple[int, int] | None = None
) -> str | None:
    """Why the critic of the sd run configured ``hp`` cannot score this SRNet's latents,
    or None when it can.

    Args:
        cfg: this SRNet's config.
        hp: the sd run's config (its ledger record's, or its model file's hyperparams).
        shape: the critic's (inputs, channels per point) as its saved weights have them;
            None derives them from ``hp`` as the sd kernel builds its critic.
    """
    sd_var = hp.get("in_var", cfg.in_var)
    if sd_var not in data.VARIABLES or not np.array_equal(
        data.inputs(sd_var), data.inputs(cfg.in_var)
    ):
        # one critic input = one curve over fixed, ordered points: other points, other task
        return (
            f"its critic scores curves over the {sd_var} training points, but this "
            f"SRNet's latents are curves over the {cfg.in_var} ones; in_var must match"
        )
    ext, ext_type = tuple(hp.get("ext") or ()), str(hp.get("ext_type", "embed"))
    sd_in = (hp.get("arch") or {}).get("in_size")
    if shape is None:  # the sd kernel's critic: N inputs, 1 + extras channels per point
        n_sd, c_sd = len(data.masks(sd_var)["train"]), len(ext) * int(sd_in or 1)
        embed = ext_type == "embed"
        shape = (n_sd if embed else n_sd * (1 + c_sd), 1 + c_sd if embed and c_sd > 0 else 1)
    n = len(data.masks(cfg.in_var)["train"])
    c = len(ext) * cfg.n_in
    want = n if ext_type == "embed" else n * (1 + c)
    emb_want = 1 + c if ext_type == "embed" and c > 0 else 1
    if shape == (want, emb_want):
        return None
    got, emb_got = shape
    return (
        f"its critic takes {got} input(s) with {emb_got} channel(s) per point (sd run: "
        f"in_var {hp.get('in_var')}, arch.in_size {sd_in}, ext {list(ext)}, ext_type "
        f"{ext_type}), but the latents of this SRNet give {want} with {emb_want} "
        f"({n} {cfg.in_var} training rows, {cfg.n_in} input column(s))"
    )
