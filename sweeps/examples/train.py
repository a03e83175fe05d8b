"""A tiny classifier trained with numpy and tracked with wandb: a W&B sweep's script.

It fits a logistic regression to two noisy Gaussian blobs by gradient descent with
momentum and logs ``loss``, ``val_loss`` and ``val_acc`` every step. It takes its
hyperparameters the three ways W&B sweep commands pass them, so one script serves the
example specs in this folder:

- from ``wandb.config``, which a sweep fills (nested ``optimizer.lr`` included);
- argparse flags: ``--lr=0.1 --normalize`` (``${args_no_boolean_flags}``);
- Hydra-style overrides: ``optimizer.lr=0.1 normalize=True`` (``${args_no_hyphens}``).

Run it alone with ``python train.py --steps=50`` (offline: ``WANDB_MODE=offline``).
"""

import argparse
import ast
import time

import numpy as np
import wandb

DEFAULTS = {
    "optimizer": {"lr": 0.1, "momentum": 0.0},
    "normalize": False,  # standardise the features (they are offset and badly scaled)
    "steps": 40,
    "seed": 0,
    "delay": 0.0,  # seconds of sleep per step, to watch a run live or stop it early
}


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return text.lower() == "true"


def parse_args() -> dict:
    """The command line as a nested config: argparse flags, then key=value overrides."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--momentum", type=float)
    # `--normalize` alone (${args_no_boolean_flags}), or `--normalize=False` (${args})
    parser.add_argument("--normalize", nargs="?", const=True, type=_bool)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--delay", type=float)
    parser.add_argument("overrides", nargs="*", help="Hydra-style key=value, e.g. optimizer.lr=0.1")
    # parse_known_args: the default command's ${args} also passes --optimizer={...}
    args, _ = parser.parse_known_args()
    config = {"optimizer": dict(DEFAULTS["optimizer"])}
    config.update({k: v for k, v in DEFAULTS.items() if k != "optimizer"})
    for key in ("lr", "momentum"):
        if getattr(args, key) is not None:
            config["optimizer"][key] = getattr(args, key)
    for key in ("normalize", "steps", "seed", "delay"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    for item in args.overrides:
        key, _, text = item.partition("=")
        try:
            value = ast.literal_eval(text)  # numbers, True/False, lists
        except (ValueError, SyntaxError):
            value = text
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config


def data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 2)) + 1.5 * y[:, None]
    return x * [1.0, 20.0] + [5.0, -30.0], y  # offset and badly scaled on purpose


def main() -> None:
    run = wandb.init(config=parse_args())
    cfg = run.config
    opt = {**DEFAULTS["optimizer"], **dict(cfg.get("optimizer") or {})}
    rng = np.random.default_rng(cfg["seed"])
    x, y = data(rng, 256)
    xv, yv = data(rng, 256)
    if cfg["normalize"]:
        mean, std = x.mean(0), x.std(0)
        x, xv = (x - mean) / std, (xv - mean) / std
    w, b = np.zeros(2), 0.0
    vw, vb = np.zeros(2), 0.0
    for _ in range(cfg["steps"]):
        p = 1 / (1 + np.exp(-np.clip(x @ w + b, -30, 30)))
        loss = -np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9))
        vw = opt["momentum"] * vw + x.T @ (p - y) / len(y)
        vb = opt["momentum"] * vb + np.mean(p - y)
        w, b = w - opt["lr"] * vw, b - opt["lr"] * vb
        pv = 1 / (1 + np.exp(-np.clip(xv @ w + b, -30, 30)))
        val_loss = -np.mean(yv * np.log(pv + 1e-9) + (1 - yv) * np.log(1 - pv + 1e-9))
        wandb.log({"loss": loss, "val_loss": val_loss, "val_acc": np.mean((pv > 0.5) == yv)})
        time.sleep(cfg["delay"])
    run.finish()


if __name__ == "__main__":
    main()
