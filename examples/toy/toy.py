#!/usr/bin/env python3
"""A toy "training program" for hypersweep's program trials, standard library only.

It pretends to train for --epochs epochs: the loss falls towards (lr - 0.1)^2, so lr = 0.1 is
best. How it reports and how it ends are chosen by --mode, so the tests can exercise every path:

  file        append JSON lines to $HYPERSWEEP_METRICS (default)
  stdout      print `epoch=N loss=X` lines instead (a program that cannot be changed)
  both        do both (the file wins)
  fail        report one epoch, write to stderr, exit 3
  nan         report a NaN loss (diverged)
  sleep       write its pid to `pids` in its trial directory, report one epoch, then sleep
              --sleep seconds
  sigkill     report one epoch, then kill itself with SIGKILL
  stubborn    ignore SIGTERM, start a grandchild that ignores it too, then sleep
  env         write the environment hypersweep gave it to env.json in its trial directory
  rewrite     rewrite $HYPERSWEEP_METRICS each epoch with that epoch's row only (open "w")
  history     rewrite $HYPERSWEEP_METRICS each epoch with every row so far
  burst       log $TOY_STEPS rows (default 200,000) per epoch, all written at once at exit
  resume      like file, and follows the checkpoint contract: saves its epoch to
              $HYPERSWEEP_CHECKPOINT_DIR/toy.json after each one, goes on from there when
              restarted, and reports $HYPERSWEEP_RESTARTS as `restarts`

Run by hand: python3 toy.py --lr 0.05 --epochs 3 --mode stdout
"""
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time


def report(row, mode, history=[]):
    path = os.environ.get("HYPERSWEEP_METRICS")
    if mode in ("rewrite", "history"):
        history.append(row)
        with open(path, "w") as f:
            for r in history if mode == "history" else history[-1:]:
                f.write(json.dumps(r) + "\n")
        time.sleep(0.3)
        return
    if mode in ("file", "both", "nan", "fail", "sleep", "sigkill", "stubborn", "env", "resume"):
        path = os.environ.get("HYPERSWEEP_METRICS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
    if mode in ("stdout", "both"):
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--mode", default="file")
    ap.add_argument("--sleep", type=float, default=60)
    ap.add_argument("--epoch-sleep", type=float, default=0)
    a = ap.parse_args()

    if a.mode == "env":
        keys = [k for k in os.environ if k.startswith(("HYPERSWEEP_", "CUDA_", "OMP_", "MKL_", "TOY_"))]
        info = {k: os.environ[k] for k in keys}
        info["cwd"] = os.getcwd()
        info["argv"] = sys.argv[1:]
        with open(os.path.join(os.environ["HYPERSWEEP_TRIAL_DIR"], "env.json"), "w") as f:
            json.dump(info, f)
    if a.mode == "sleep":
        with open(os.path.join(os.environ["HYPERSWEEP_TRIAL_DIR"], "pids"), "w") as f:
            f.write(f"{os.getpid()}\n")
    if a.mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # A grandchild in the same process group, also deaf to SIGTERM: it must not survive.
        child = subprocess.Popen(
            [sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
        )
        with open(os.path.join(os.environ["HYPERSWEEP_TRIAL_DIR"], "pids"), "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")

    if a.mode == "burst":
        steps = int(os.environ.get("TOY_STEPS", "200000"))
        pad = "x" * 60
        lines = []
        for i in range(steps * a.epochs):
            epoch = i // steps + 1
            loss = (a.lr - 0.1) ** 2 + 1.0 / epoch
            lines.append(json.dumps({"step": i, "epoch": epoch, "loss": loss, "pad": pad}))
        with open(os.environ["HYPERSWEEP_METRICS"], "a") as f:
            f.write("\n".join(lines) + "\n")
        return

    first = 1
    saved = os.path.join(os.environ.get("HYPERSWEEP_CHECKPOINT_DIR", "."), "toy.json")
    if a.mode == "resume" and os.path.exists(saved):
        with open(saved) as f:
            first = json.load(f)["epoch"] + 1
    for epoch in range(first, a.epochs + 1):
        loss = (a.lr - 0.1) ** 2 + 1.0 / epoch
        if a.mode == "nan" and epoch == 2:
            loss = math.nan
        row = {"epoch": epoch, "loss": loss, "accuracy": 1.0 - loss / 2}
        if a.mode == "resume":
            row["restarts"] = int(os.environ.get("HYPERSWEEP_RESTARTS", "0"))
        report(row, a.mode)
        if a.mode == "resume":
            with open(saved + ".tmp", "w") as f:
                json.dump({"epoch": epoch}, f)
            os.replace(saved + ".tmp", saved)
        if a.epoch_sleep:
            time.sleep(a.epoch_sleep)
        if a.mode == "fail":
            print("warming up", file=sys.stderr)
            print("ValueError: the toy failed on purpose", file=sys.stderr)
            sys.exit(3)
        if a.mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if a.mode in ("sleep", "stubborn"):
            time.sleep(a.sleep)


if __name__ == "__main__":
    main()
