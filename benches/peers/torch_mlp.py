"""PyTorch peer of tabtune's MLP epoch benchmark (benches/run-nn.sh).

Same work per epoch as tabtune's trainer: shuffle, mini-batches of `--batch` rows through
Linear-ReLU-Dropout x depth and a linear head, label-smoothed cross-entropy, backward, global
gradient-norm clipping, AdamW with a warm-up + cosine schedule. The data has tabtune's shape
(rows x features, classes): epoch time depends on the shapes, not on the values. Prints one JSON
object with the epoch times (after the first, warm-up epoch).
"""

import argparse
import json
import math
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--features", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.rows, args.features, device=dev)
    y = torch.randint(0, args.classes, (args.rows,), device=dev)
    layers = []
    width_in = args.features
    for _ in range(args.depth):
        layers += [torch.nn.Linear(width_in, args.width), torch.nn.ReLU(), torch.nn.Dropout(args.dropout)]
        width_in = args.width
    layers.append(torch.nn.Linear(width_in, args.classes))
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    steps_per_epoch = math.ceil(args.rows / args.batch)
    total = steps_per_epoch * args.epochs
    warm = int(0.05 * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(args.rows, device=dev)
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch : (s + 1) * args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    rest = sorted(times[1:])
    print(json.dumps({
        "bench": "mlp_epoch",
        "peer": f"torch {torch.__version__}",
        "threads": args.threads,
        "device": args.device,
        "epoch_seconds": times[1:],
        "epoch_seconds_median": rest[len(rest) // 2] if rest else None,
    }))


if __name__ == "__main__":
    main()
