"""How full packed claims are: the 153 study's draws claimed in the engine's order (as
packed agents claimed before issue 20) against grouped by pack key (``claim_pack``).

Registers ``sweeps/sd_study.yaml`` (random search over 16 critic shapes, among other
parameters) twice per pack size in a throw-away SQLite ledger and claims CLAIMS packs of
each size from each: ``--pack K`` trials one ``claim`` after another, and one
``claim_pack`` of K that chooses among up to ``packing.candidates`` suggestions. Nothing
is trained. Prints the mean pack size (claimed trials per pack, the packs being the
claim's trials grouped by the sd kernel's ``pack_key`` as the agent trains them) and
the seconds per claim, side by side. Target (issue 20): grouped packs close to K.

    python benchmarks/bench_pack_fill.py [--packs 16 64] [--claims 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "sweeps" / "sd_study.yaml"


def fill(pack: int, claims: int, results: Path, grouped: bool) -> tuple[float, float]:
    """Mean pack size and seconds per claim over ``claims`` claims of ``pack`` trials."""
    from srsweep import kernels
    from srsweep.agents.packing import candidates
    from srsweep.agents.packing import groups
    from srsweep.agents.packing import params_key
    from srsweep.backends import LocalBackend
    from srsweep.spec import load_spec

    kernel = kernels.get("sd")
    key = params_key(kernel)
    assert key is not None
    spec = load_spec(SPEC)
    ledger = LocalBackend(results)
    sid = ledger.create_sweep(spec)
    trials = packs = 0
    t0 = time.perf_counter()
    for _ in range(claims):
        if grouped:
            pool = candidates(spec.raw, pack)
            claimed = ledger.claim_pack(sid, "bench", pack, key=key, candidates=pool)
        else:
            claimed = [r for _ in range(pack) if (r := ledger.claim(sid, "bench")) is not None]
        trials += len(claimed)
        packs += len(groups(kernel, claimed))
    seconds = (time.perf_counter() - t0) / claims
    ledger.close()
    return trials / packs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--claims", type=int, default=8)
    args = parser.parse_args()
    print(f"pack size of {SPEC.relative_to(ROOT)}'s draws, {args.claims} claims each (no training)")
    print(f"{'--pack':>6}  {'engine order':>12}  {'grouped':>8}  {'s/claim order':>13}  grouped")
    with tempfile.TemporaryDirectory() as tmp:
        for pack in args.packs:
            before, t_before = fill(pack, args.claims, Path(tmp) / f"order{pack}", False)
            after, t_after = fill(pack, args.claims, Path(tmp) / f"grouped{pack}", True)
            print(f"{pack:>6}  {before:>12.1f}  {after:>8.1f}  {t_before:>13.2f}  {t_after:.2f}")


if __name__ == "__main__":
    main()
