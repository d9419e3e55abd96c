#!/usr/bin/python3
"""The same work as trainer_bench, in PyTorch (Debian's python3-torch, 1.13 like libtorch-dev).

Same model (each zoo model is rebuilt layer for layer as services/trainer/core/image_models.cc and
text_models.cc build it), data (the first N Fashion-MNIST training images normalised once into one
float tensor; for text, the token ids trainer_bench --dump_text wrote), batch size, thread count,
Adam, per-sample-weighted cross-entropy and seeded reshuffling at each epoch end. `warmup` untimed
steps, then `steps` timed ones with no evaluation inside the timer; then `eval_reps` timed passes of
evaluation over the test split (batches of `eval_batch`, 256 as greenloop's ScoreSplit; summed
loss and correct count; torch.no_grad, as PyTorch eager code evaluates).
Prints one line like trainer_bench's, starting "pytorch"."""
import argparse
import gzip
import os
import resource
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
TRANSFORMER_TOKENS, TRANSFORMER_HEADS = 256, 4
DEFAULT_SHAPES = {"cnn": (8, 2), "mlp": (256, 2), "resnet": (16, 1), "mobilenet": (32, 2),
                  "transformer": (64, 2), "bag_of_words": (64, 0), "lenet5": (0, 0)}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


def conv3(i, o, stride=1, groups=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, groups=groups, bias=False)


class Cnn(nn.Module):
    def __init__(self, classes, width, depth, rows=28):
        super().__init__()
        chans, self.convs = 1, nn.ModuleList()
        for i in range(depth):
            self.convs.append(nn.Conv2d(chans, width << i, 3, padding=1))
            chans, rows = width << i, rows // 2
        self.fc1, self.fc2 = nn.Linear(chans * rows * rows, 64), nn.Linear(64, classes)

    def forward(self, x):
        for c in self.convs:
            x = F.max_pool2d(F.relu(c(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Mlp(nn.Module):
    def __init__(self, classes, width, depth):
        super().__init__()
        sizes = [784] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.out = nn.Linear(sizes[-1], classes)

    def forward(self, x):
        x = x.flatten(1)
        for h in self.hidden:
            x = F.relu(h(x))
        return self.out(x)


class LeNet5(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class BasicBlock(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3(i, o, stride), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = conv3(o, o), nn.BatchNorm2d(o)
        self.proj = None
        if stride != 1 or i != o:
            self.proj = nn.Sequential(nn.Conv2d(i, o, 1, stride=stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.proj(x) if self.proj is not None else x))


class ResNet(nn.Module):
    def __init__(self, classes, width, depth):
        super().__init__()
        self.stem, self.stem_bn = conv3(1, width), nn.BatchNorm2d(width)
        blocks, chans = [], width
        for stage in range(3):
            for b in range(depth):
                blocks.append(BasicBlock(chans, width << stage, 2 if stage > 0 and b == 0 else 1))
                chans = width << stage
        self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(chans, classes)

    def forward(self, x):
        return self.fc(self.blocks(F.relu(self.stem_bn(self.stem(x)))).mean((2, 3)))


class Separable(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.depthwise, self.bn1 = conv3(i, i, stride, i), nn.BatchNorm2d(i)
        self.pointwise, self.bn2 = nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o)

    def forward(self, x):
        return F.relu(self.bn2(self.pointwise(F.relu(self.bn1(self.depthwise(x))))))


class MobileNet(nn.Module):
    def __init__(self, classes, width, depth):
        super().__init__()
        self.stem, self.stem_bn = conv3(1, width), nn.BatchNorm2d(width)
        plan = [(2 * width, 2), (4 * width, 2)] + [(4 * width, 1)] * depth
        blocks, chans = [], width
        for o, s in plan:
            blocks.append(Separable(chans, o, s))
            chans = o
        self.blocks, self.fc = nn.Sequential(*blocks), nn.Linear(chans, classes)

    def forward(self, x):
        return self.fc(self.blocks(F.relu(self.stem_bn(self.stem(x)))).mean((2, 3)))


class BagOfWords(nn.Module):
    def __init__(self, vocabulary, classes, width):
        super().__init__()
        self.bag, self.fc = nn.EmbeddingBag(vocabulary, width, mode="mean"), nn.Linear(width, classes)

    def forward(self, batch):
        tokens, offsets = batch
        return self.fc(self.bag(tokens, offsets))


class Transformer(nn.Module):
    """text_models.cc's TransformerImpl: start token, first 255 ids, padding mask, mean pooling."""

    def __init__(self, vocabulary, classes, width, depth):
        super().__init__()
        self.pad, self.start = vocabulary, vocabulary + 1
        self.tokens = nn.Embedding(vocabulary + 2, width, padding_idx=self.pad)
        self.positions = nn.Parameter(torch.randn(TRANSFORMER_TOKENS, 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, TRANSFORMER_HEADS, dim_feedforward=2 * width, dropout=0.1)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.fc = nn.Linear(width, classes)

    def padded(self, tokens, offsets):
        batch, total = offsets.size(0), tokens.size(0)
        ends = torch.cat([offsets[1:], torch.tensor([total])])
        lengths = (ends - offsets).clamp_max(TRANSFORMER_TOKENS - 1)
        ids = torch.full((batch, int(lengths.max()) + 1), self.pad, dtype=torch.long)
        ids[:, 0] = self.start
        mail = torch.repeat_interleave(torch.arange(batch), ends - offsets)
        place = torch.arange(total) - offsets[mail]
        kept = place < TRANSFORMER_TOKENS - 1
        ids[mail[kept], place[kept] + 1] = tokens[kept]
        return ids, ids.eq(self.pad)

    def forward(self, batch):
        ids, padding = self.padded(*batch)
        x = self.tokens(ids.t()) + self.positions[: ids.size(1)]
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = padding.logical_not().t().unsqueeze(2).to(x.dtype)
        return self.fc((x * keep).sum(0) / keep.sum(0))


def make_model(name, width, depth, classes, vocabulary):
    dw, dd = DEFAULT_SHAPES[name]
    width, depth = width or dw, depth or dd
    return {"cnn": lambda: Cnn(classes, width, depth), "mlp": lambda: Mlp(classes, width, depth),
            "lenet5": lambda: LeNet5(classes), "resnet": lambda: ResNet(classes, width, depth),
            "mobilenet": lambda: MobileNet(classes, width, depth),
            "bag_of_words": lambda: BagOfWords(vocabulary, classes, width),
            "transformer": lambda: Transformer(vocabulary, classes, width, depth)}[name]()


class Images:
    def __init__(self, a):
        def images(name, limit=None):
            x = read_idx(f"{a.dir}/{name}")[:limit].unsqueeze(1).float() / 255.0
            return ((x - FASHION_MEAN) / FASHION_STD).contiguous()

        self.train_x = images("train-images-idx3-ubyte.gz", a.samples)
        self.train_y = read_idx(f"{a.dir}/train-labels-idx1-ubyte.gz")[: a.samples].long()
        self.test_x = images("t10k-images-idx3-ubyte.gz")
        self.test_y = read_idx(f"{a.dir}/t10k-labels-idx1-ubyte.gz").long()
        self.classes, self.vocabulary = 10, 0

    def train_size(self):
        return len(self.train_y)

    def batch(self, split, idx):
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        return x[idx], y[idx]

    def test_size(self):
        return len(self.test_y)


class Text:
    """The splits trainer_bench --dump_text wrote (the greenloop tokenisation, same ids)."""

    def __init__(self, a):
        data = open(a.text, "rb").read()
        words = torch.frombuffer(bytearray(data), dtype=torch.int64)
        self.vocabulary, self.classes = int(words[0]), int(words[1])
        at, self.splits = 2, {}
        for split in ("train", "test"):
            n, ntok = int(words[at]), int(words[at + 1])
            at += 2
            labels, at = words[at:at + n].clone(), at + n
            offsets, at = words[at:at + n + 1].clone(), at + n + 1
            tokens, at = words[at:at + ntok].clone(), at + ntok
            if split == "train" and a.samples and a.samples < n:
                n, labels, offsets = a.samples, labels[: a.samples], offsets[: a.samples + 1]
            self.splits[split] = (labels, offsets, tokens)

    def train_size(self):
        return len(self.splits["train"][0])

    def test_size(self):
        return len(self.splits["test"][0])

    def batch(self, split, idx):
        labels, offsets, tokens = self.splits[split]
        starts, ends = offsets[idx], offsets[idx + 1]
        pieces = [tokens[s:e] for s, e in zip(starts.tolist(), ends.tolist())]
        lengths = ends - starts
        batch_offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        return (torch.cat(pieces), batch_offsets), labels[idx]


def loaded(pattern):
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line[line.find("/"):].strip() if "/" in line else ""
            name = os.path.basename(path)
            if pattern in name:
                found.add(os.path.basename(os.path.dirname(path)) + "/" + name)
    return ",".join(sorted(found)) or "none"


def evaluate(model, data, batch):
    model.eval()
    with torch.no_grad():
        loss = correct = 0.0
        for i in range(0, data.test_size(), batch):
            x, y = data.batch("test", torch.arange(i, min(i + batch, data.test_size())))
            logits = model(x)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return correct / data.test_size()


def train(model, data, a):
    """`warmup` + `steps` steps; the wall and CPU seconds of the last `steps`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weights = torch.ones(data.train_size())
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(data.train_size(), generator=g)
    per_epoch = max(1, data.train_size() // a.batch)
    model.train()
    start = cpu = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            start, cpu = time.perf_counter(), time.process_time()
        s = step % per_epoch
        if s == 0 and step > 0:
            order = torch.randperm(data.train_size(), generator=g)
        idx = order[s * a.batch:(s + 1) * a.batch]
        x, y = data.batch("train", idx)
        opt.zero_grad()
        loss = (F.cross_entropy(model(x), y, reduction="none") * weights[idx]).sum() / a.batch
        loss.backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def main():
    p = argparse.ArgumentParser()
    for name, default in (("samples", 10000), ("batch", 64), ("threads", 2), ("steps", 300),
                          ("warmup", 30), ("width", 0), ("depth", 0), ("eval_reps", 3),
                          ("eval_batch", 256)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--model", default="cnn", choices=sorted(DEFAULT_SHAPES))
    p.add_argument("--text", help="the file trainer_bench --dump_text wrote (text models)")
    p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    text = a.model in ("bag_of_words", "transformer")
    if text and not a.text:
        p.error(f"--model={a.model} needs --text=FILE (trainer_bench --dump_text=FILE)")
    data = Text(a) if text else Images(a)
    model = make_model(a.model, a.width, a.depth, data.classes, data.vocabulary)
    seconds, cpu = train(model, data, a)
    accuracy = evaluate(model, data, a.eval_batch)  # the run's last evaluation, after the timer
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # as trainer_bench: before eval timing
    start = time.perf_counter()
    for _ in range(a.eval_reps):
        evaluate(model, data, a.eval_batch)
    eval_seconds = time.perf_counter() - start
    samples = a.steps * a.batch
    watts = 3.5 - 0.74  # the collector estimator's active watts per CPU (energy/core/estimator.h)
    params = sum(t.numel() for t in model.parameters())
    print(f"pytorch model={a.model} rank=0 world=1 samples_per_s={samples / seconds:.1f} "
          f"peak_rss_mb={rss_mb:.1f} steps={a.warmup + a.steps} timed_steps={a.steps} evals_in_timer=0 "
          f"eval_samples_per_s={data.test_size() * a.eval_reps / eval_seconds:.1f} "
          f"eval_passes={a.eval_reps} eval_batch={a.eval_batch} threads={torch.get_num_threads()} cpu_s={cpu:.2f} est_mj_per_sample={1e3 * cpu * watts / samples:.4f} "
          f"parameters={params} accuracy={accuracy:.4f} blas={loaded('blas')} dnnl={loaded('dnnl')}")


if __name__ == "__main__":
    main()
