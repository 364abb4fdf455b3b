"""Trains the small CNN that ``python -m cnnfast demo`` runs, and writes what the demo ships:
python/cnnfast/data/digits_cnn.npz (the model in cnnfast.nn's save format) and
python/cnnfast/data/digits_test.npz (the held-out test images, uint8 0..16, and labels).

Development tool only (needs PyTorch and scikit-learn, which are not cnnfast dependencies):

    pip install torch scikit-learn && pip install -e . --no-build-isolation
    python scripts/train_demo.py

The data is scikit-learn's bundled 8x8 digits (no download; see python/cnnfast/data/README.md),
split 80/20 stratified with a fixed seed. PyTorch trains the network (Adam, fixed seed, CPU);
its state_dict is loaded into the same architecture built from cnnfast.nn (the keys match
torch's), the two are checked to agree on the test set, and cnnfast's model is saved.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import cnnfast.nn as cnn

DATA = Path(__file__).resolve().parents[1] / "python" / "cnnfast" / "data"
SEED = 0


def torch_model():
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 16, 3, padding=1, bias=False), t.BatchNorm2d(16), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 32, 3, padding=1, bias=False), t.BatchNorm2d(32), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(32 * 2 * 2, 10))


def cnnfast_model():
    """The same architecture, layer for layer (so the state_dict keys are the same)."""
    return cnn.Sequential(
        cnn.Conv2d(1, 16, 3, padding=1, bias=False), cnn.BatchNorm2d(16), cnn.ReLU(),
        cnn.MaxPool2d(2),
        cnn.Conv2d(16, 32, 3, padding=1, bias=False), cnn.BatchNorm2d(32), cnn.ReLU(),
        cnn.MaxPool2d(2),
        cnn.Flatten(), cnn.Linear(32 * 2 * 2, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # bitwise-reproducible training

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # integers 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target)
    scale = lambda a: torch.from_numpy(a.astype(np.float32)[:, None] / 16.0)  # noqa: E731
    xt, yt = scale(x_train), torch.from_numpy(y_train.astype(np.int64))

    model = torch_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start:start + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.inference_mode():
        torch_logits = model(scale(x_test)).numpy()
    print(f"torch: test accuracy {np.mean(torch_logits.argmax(1) == y_test):.4f} "
          f"after {args.epochs} epochs")

    ours = cnnfast_model()
    ours.load_state_dict({k: v.numpy() for k, v in model.state_dict().items()})
    ours.eval()
    logits = ours(x_test.astype(np.float32)[:, None] / np.float32(16))
    print(f"cnnfast: test accuracy {np.mean(logits.argmax(1) == y_test):.4f}, max |logit "
          f"difference| to torch {np.abs(logits - torch_logits).max():.2e}")
    if not np.array_equal(logits.argmax(1), torch_logits.argmax(1)):
        raise SystemExit("cnnfast and torch disagree on a test image: not saving")

    args.out.mkdir(parents=True, exist_ok=True)
    ours.save(args.out / "digits_cnn.npz")
    with open(args.out / "digits_test.npz", "wb") as f:
        np.savez_compressed(f, images=x_test, labels=y_test.astype(np.uint8))
    for name in ("digits_cnn.npz", "digits_test.npz"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
