#!/usr/bin/python3
"""The same training as trainer_bench, in PyTorch (Debian's python3-torch, 1.13 like
libtorch-dev): same CNN, data (the first N Fashion-MNIST training images, normalised once into
one float tensor), batch size, thread count, Adam, per-sample-weighted cross-entropy, seeded
shuffling, evaluation on the 10k test images at the end. Prints one line like trainer_bench."""
import argparse
import gzip
import resource
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)

    def images(name, limit=None):
        x = read_idx(f"{a.dir}/{name}")[:limit].unsqueeze(1).float() / 255.0
        return (x - 0.2860) / 0.3530

    train_x = images("train-images-idx3-ubyte.gz", a.samples).contiguous()
    train_y = read_idx(f"{a.dir}/train-labels-idx1-ubyte.gz")[: a.samples].long()
    test_x = images("t10k-images-idx3-ubyte.gz")
    test_y = read_idx(f"{a.dir}/t10k-labels-idx1-ubyte.gz").long()
    weights = torch.ones(a.samples)

    model = Cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(a.samples, generator=g)
    per_epoch = a.samples // a.batch
    total = a.warmup + a.steps
    model.train()
    start = None
    for step in range(total):
        if step == a.warmup:
            start = time.perf_counter()
        s = step % per_epoch
        if s == 0 and step > 0:
            order = torch.randperm(a.samples, generator=g)
        idx = order[s * a.batch:(s + 1) * a.batch]
        x, y, w = train_x[idx], train_y[idx], weights[idx]
        opt.zero_grad()
        loss = (F.cross_entropy(model(x), y, reduction="none") * w).sum() / a.batch
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        correct = sum((model(test_x[i:i + 1024]).argmax(1) == test_y[i:i + 1024]).sum().item()
                      for i in range(0, len(test_y), 1024))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"pytorch rank=0 world=1 samples_per_s={a.steps * a.batch / elapsed:.1f} "
          f"peak_rss_mb={rss_mb:.1f} steps={total} accuracy={correct / len(test_y):.4f}")


if __name__ == "__main__":
    main()
