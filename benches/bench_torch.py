"""PyTorch side of scripts/bench-cpu.sh: the same models, data and sample counts as
`hypersweep bench` and the reduced sweeps, timed the same way (training steps only).

  python benches/bench_torch.py throughput --models linear,mlp,cnn --threads 2 --epochs 2
  python benches/bench_torch.py sweep s3|s2 --epochs N    # the trials one after another
"""
import argparse, gzip, json, struct, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def load_bundled():
    def idx(name):
        raw = gzip.open(ROOT / "data/mnist-10k" / name).read()
        ndim = raw[3]
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    x = idx("images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    y = idx("labels-idx1-ubyte.gz").astype(np.int64)
    return x[:8000], y[:8000], x[8000:], y[8000:]


def model_for(kind, activation="relu"):
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
    if kind == "linear":
        return nn.Linear(784, 10)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(784, 512), act(), nn.Dropout(0.2), nn.Linear(512, 256), act(),
                             nn.Dropout(0.2), nn.Linear(256, 10))
    if kind == "cnn":
        return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 5, padding=2), nn.MaxPool2d(2),
                             nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
                             nn.Flatten(), nn.Linear(1568, 100), nn.ReLU(), nn.Linear(100, 10))
    raise SystemExit(f"unknown model {kind}")


SETTINGS = {  # optimizer, lr, batch, normalisation (mean, std)
    "linear": ("sgd", 0.01, 100, (0.1307, 0.3081)),
    "mlp": ("adam", 1e-3, 128, (0.1307, 0.3081)),
    "cnn": ("adam", 1e-3, 600, (0.1307, 0.3081)),
}


def train(model, opt, x, y, batch, epochs, steps_per_epoch=None, seed=1):
    """Returns (samples, seconds) of training only."""
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    samples, seconds = 0, 0.0
    model.train()
    for _ in range(epochs):
        t0 = time.perf_counter()
        if steps_per_epoch:
            batches = [torch.randint(0, n, (batch,), generator=g) for _ in range(steps_per_epoch)]
        else:
            perm = torch.randperm(n, generator=g)
            batches = [perm[i:i + batch] for i in range(0, n, batch)]
        for idx in batches:
            xb, yb = x[idx], y[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            samples += len(idx)
        if x.is_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
    return samples, seconds


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def make_opt(kind, params, lr):
    return {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "radam": torch.optim.RAdam}[kind](params, lr=lr)


def throughput(args):
    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = load_bundled()
    for m in args.models.split(","):
        opt_kind, lr, batch, (mean, std) = SETTINGS[m]
        torch.manual_seed(1)
        dev = torch.device(args.device)
        x = torch.from_numpy((xtr - mean) / std).to(dev)
        y = torch.from_numpy(ytr).to(dev)
        if args.train_size:
            x, y = x[:args.train_size], y[:args.train_size]
        model = model_for(m).to(dev)
        opt = make_opt(opt_kind, model.parameters(), lr)
        samples, seconds = train(model, opt, x, y, batch, args.epochs)
        acc = accuracy(model, torch.from_numpy((xte - mean) / std).to(dev), torch.from_numpy(yte).to(dev))
        print(json.dumps({"side": "pytorch", "model": m, "device": args.device, "threads": torch.get_num_threads(), "samples": samples,
                          "seconds": seconds, "samples_per_second": samples / seconds, "test_accuracy": acc}))


def sweep(args):
    """The trials of a reduced sweep, one after another in one process, as a notebook would."""
    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = load_bundled()
    t0 = time.perf_counter()
    out = []
    if args.which == "s3":
        x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
        for act in ["relu", "sigmoid"]:
            torch.manual_seed(42)
            model = model_for("mlp", act)
            train(model, make_opt("adam", model.parameters(), 1e-3), x, y, 128, args.epochs)
            out.append((act, accuracy(model, torch.from_numpy(xte), torch.from_numpy(yte))))
    else:
        x, y = torch.from_numpy((xtr - 0.5) / 0.5), torch.from_numpy(ytr)
        for b in [1, 10, 100, 1000, 8000]:
            model = nn.Linear(784, 10)
            nn.init.zeros_(model.weight); nn.init.zeros_(model.bias)
            train(model, make_opt("sgd", model.parameters(), 0.01), x, y, b, args.epochs, steps_per_epoch=100, seed=42)
            out.append((b, accuracy(model, torch.from_numpy((xte - 0.5) / 0.5), torch.from_numpy(yte))))
    print(json.dumps({"side": "pytorch", "sweep": args.which, "epochs": args.epochs,
                      "wall_seconds": time.perf_counter() - t0, "accuracies": out}))


FUSE_SHAPES = {  # the S5 MLP and the S4 CNN: model, optimizer, batch, normalisation
    "s5": (lambda: nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 250), nn.ReLU(),
                                 nn.Linear(250, 100), nn.ReLU(), nn.Linear(100, 10)), "sgd", 64, (0.0, 1.0)),
    "s4": (lambda: nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 5, padding=2), nn.MaxPool2d(2),
                                 nn.ReLU(), nn.Conv2d(16, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(1568, 10)), "adam", 600, (0.1307, 0.3081)),
}


def fuse(args):
    """scripts/bench-fuse.sh's baseline: the trials of one shape one after another (eager, one
    model at a time), on the given device; their learning rates as the sweep's grid."""
    torch.set_num_threads(args.threads)
    make, opt_kind, batch, (mean, std) = FUSE_SHAPES[args.shape]
    xtr, ytr, _, _ = load_bundled()
    dev = torch.device(args.device)
    x = torch.from_numpy((xtr[:args.train_size] - mean) / std).to(dev)
    y = torch.from_numpy(ytr[:args.train_size]).to(dev)
    t0 = time.perf_counter()
    samples = 0
    for i in range(args.trials):
        torch.manual_seed(i)
        model = make().to(dev)
        lr = (0.05 if opt_kind == "sgd" else 1e-3) * (1 + i % 4)
        s, _ = train(model, make_opt(opt_kind, model.parameters(), lr), x, y, batch, args.epochs, seed=i)
        samples += s
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    print(json.dumps({"side": "pytorch", "shape": args.shape, "device": args.device, "trials": args.trials,
                      "wall_seconds": wall, "samples_per_second_per_trial": samples / wall / args.trials}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--models", default="linear,mlp,cnn")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--train-size", type=int)
    t.add_argument("--device", default="cpu")
    s = sub.add_parser("sweep")
    s.add_argument("which", choices=["s3", "s2"])
    s.add_argument("--epochs", type=int, default=3)
    f = sub.add_parser("fuse")
    f.add_argument("shape", choices=["s5", "s4"])
    f.add_argument("--trials", type=int, default=16)
    f.add_argument("--train-size", type=int, default=4000)
    f.add_argument("--epochs", type=int, default=1)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    {"throughput": throughput, "sweep": sweep, "fuse": fuse}[a.cmd](a)
