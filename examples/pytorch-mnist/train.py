"""Train a small MLP on the bundled MNIST sample (data/mnist-10k) with PyTorch.

How hypersweep runs it (see sweep.yaml next to this file): once per trial, with the working
directory at this folder, the trial's parameters filled into the command-line flags, and these
environment variables set:
  HYPERSWEEP_PARAMS   path to a JSON file with the trial's parameters (used for any flag not given)
  HYPERSWEEP_METRICS  file it appends one JSON line to per epoch, and one with test metrics
  CUDA_VISIBLE_DEVICES  the GPU it was given ("" on CPU);  OMP_NUM_THREADS  its thread budget
  HYPERSWEEP_CHECKPOINT_DIR  the trial's directory for its checkpoint, kept across restarts: the
                      state is saved there after each epoch and loaded on start, so a stopped or
                      killed trial (Ctrl-C, kill -9, a Slurm requeue) goes on where it was
Run by hand (no HYPERSWEEP_METRICS), it prints "epoch=N val_accuracy=X ..." lines instead:
  python3 train.py --lr 0.1 --hidden 128 --epochs 3
Data: the first 8,000 digits train (the last 1,000 of those held out for validation), the
last 2,000 are the test set.
"""
import argparse, gzip, json, os, struct, time

import numpy as np
import torch
from torch import nn

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "mnist-10k")


def read_idx(name, magic):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    got, count = struct.unpack(">II", raw[:8])
    assert got == magic, f"{name}: magic {got}, expected {magic}"
    header = 16 if magic == 2051 else 8  # images carry rows and columns too
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(count, -1)


def settings():
    """Flags win; a flag left out falls back to HYPERSWEEP_PARAMS, then to the default."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float)
    p.add_argument("--hidden", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    args = vars(p.parse_args())
    params = {}
    if os.environ.get("HYPERSWEEP_PARAMS"):
        with open(os.environ["HYPERSWEEP_PARAMS"]) as f:
            params = json.load(f)
    model = params.get("model") if isinstance(params.get("model"), dict) else {}
    fallback = {"lr": params.get("lr"), "hidden": model.get("hidden", params.get("hidden")),
                "epochs": params.get("epochs"), "seed": params.get("seed"),
                "batch_size": params.get("batch_size"), "optimizer": params.get("optimizer")}
    defaults = {"lr": 0.1, "hidden": 128, "epochs": 3, "seed": 1, "batch_size": 64, "optimizer": "sgd"}
    return {k: args[k] if args[k] is not None else
            type(defaults[k])(fallback[k]) if fallback[k] is not None else defaults[k]
            for k in defaults}


def report(record):
    """One JSON line per record to HYPERSWEEP_METRICS, or a readable line on stdout."""
    path = os.environ.get("HYPERSWEEP_METRICS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
    else:
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in record.items()), flush=True)


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        loss = nn.functional.cross_entropy(out, y).item()
        return round(loss, 6), (out.argmax(1) == y).sum().item() / len(y)


def main():
    s = settings()
    torch.manual_seed(s["seed"])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
    use_gpu = bool(os.environ.get("CUDA_VISIBLE_DEVICES")) and torch.cuda.is_available()
    device = torch.device("cuda" if use_gpu else "cpu")

    images = read_idx("images-idx3-ubyte.gz", 2051).astype(np.float32) / 255.0
    x = torch.from_numpy((images - 0.1307) / 0.3081).to(device)
    y = torch.from_numpy(read_idx("labels-idx1-ubyte.gz", 2049).reshape(-1).astype(np.int64)).to(device)
    x_train, y_train = x[:7000], y[:7000]
    x_val, y_val = x[7000:8000], y[7000:8000]
    x_test, y_test = x[8000:], y[8000:]

    model = nn.Sequential(nn.Linear(784, s["hidden"]), nn.ReLU(), nn.Linear(s["hidden"], 10)).to(device)
    if s["optimizer"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=0.9)

    # The checkpoint contract: a restarted trial finds its last state here and goes on.
    ckpt_dir = os.environ.get("HYPERSWEEP_CHECKPOINT_DIR")
    ckpt = os.path.join(ckpt_dir, "last.pt") if ckpt_dir else None
    first = 1
    if ckpt and os.path.exists(ckpt):
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        first = state["epoch"] + 1

    start = time.time()
    for epoch in range(first, s["epochs"] + 1):
        model.train()
        order, total = torch.randperm(len(x_train), device=device), 0.0
        for i in range(0, len(order), s["batch_size"]):
            batch = order[i:i + s["batch_size"]]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        model.eval()
        val_loss, val_acc = evaluate(model, x_val, y_val)
        report({"epoch": epoch, "train_loss": round(total / len(x_train), 6),
                "val_loss": val_loss, "val_accuracy": val_acc})
        if ckpt:  # written aside, then renamed: a kill never leaves half a checkpoint
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                        "rng": torch.get_rng_state(), "epoch": epoch}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    test_loss, test_acc = evaluate(model, x_test, y_test)
    report({"epoch": s["epochs"], "test_loss": test_loss, "test_accuracy": test_acc})
    if not os.environ.get("HYPERSWEEP_METRICS"):
        print(f"# {s} on {device}, {time.time() - start:.1f}s training", flush=True)


if __name__ == "__main__":
    main()
