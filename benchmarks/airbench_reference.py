"""Tier 3's reference: airbench94's recipe (Jordan 2024) on this machine, and what converting costs it.

Trains airbench94's network and training, nearly as the paper describes them, on the
training split's first 45,000 images and scores it on the validation split
(:func:`snnlib.data.validation_split`, never the test set): a fixed whitening
layer of 2 x 2 patches (24 channels), three groups of two 3 x 3 convolutions
(64, 256, 256 channels; the first filters of each start as identities), each
group ``conv -> pool -> batch norm -> activation -> conv -> batch norm ->
activation``, batch norms without a learned scale, a last 3 x 3 pool, a linear
layer whose logits are divided by 9; SGD with Nesterov momentum 0.85, batches of
1,024, a learning rate and weight decay per 1,024 images (11.5 and 0.0153, the
summed loss), batch-norm biases 64 times faster, label smoothing 0.2, crops of 2
pixels and alternating flips, Lookahead, a linear warm-up over 23% of the steps
and a linear decay to 0; the whitening layer's bias learns for 3 epochs.

Its GELU has no spiking equivalent (an integrate-and-fire neuron's rate is a ReLU of its
input); its max pools convert (:class:`snnlib.tiers.conversion.SpikingMaxPool`), so
``--pool max --act relu`` is the convertible copy, the network of the tier's full profile.
``--pool avg`` replaces the max pools by average pools; ``--order after`` pools after the
activation instead of straight after the convolution.

Prints each epoch's loss and time, then the validation accuracy with and without
test-time augmentation (the image and its mirror image, and both moved one pixel
up-left and down-right), and one line of JSON. bfloat16 autocast and channels-last
batches on the CPU (the ``full`` profile's arithmetic, :func:`~snnlib.tiers.conversion.numerics.fast`).

    python benchmarks/airbench_reference.py                          # max pooling, GELU
    python benchmarks/airbench_reference.py --pool max --act relu    # the convertible copy
    python benchmarks/airbench_reference.py --train 5000 --val 1000 --epochs 0.5   # a smoke run

``--append PATH --name NAME`` also stores the run's JSON, with its command line, under NAME
in the JSON list at PATH (``results/airbench_reference.json``; a run of the same name is
replaced). The whitening filters here come from the patches' centred covariance, with a
bias that centres them.

``--exact`` follows airbench94.py's code where the above differs from it: the whitening
filters from the patches' uncentred second moments, with a bias that starts at 0 and
learns at the base rate (not 64 times faster), and a learning rate that ends at 0.07 of
its peak, not 0 (as every version of that file has them); Lookahead starting after 3 epochs,
every epoch ending with the weights set to the average (as its first release has it, commit
01a2367 of KellerJordan/cifar10-airbench; the later legacy/airbench94.py averages from the
first step and sets the weights to the average only at the end, as the tier's
``schedule="airbench"`` does).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from _split import count_problem, first_per_class
from cnn_techniques import add_store_arguments, check_store_arguments, print_and_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=5.0, help="epochs (airbench94: 9.9)")
    parser.add_argument("--pool", choices=("max", "avg"), default="max")
    parser.add_argument("--act", choices=("gelu", "relu"), default="gelu")
    parser.add_argument("--order", choices=("airbench", "after"), default="airbench",
                        help="pool straight after the convolution, or after the activation")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train", type=int, default=45000, help="training images (split's first N)")
    parser.add_argument("--val", type=int, default=5000,
                        help="validation images (the split's first N / 10 of each class)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--whiten-fp32", action="store_true",
                        help="the whitening layer in float32 (the rest in bfloat16)")
    parser.add_argument("--exact", action="store_true",
                        help="airbench94's own choices where this script's differ (see the docstring)")
    add_store_arguments(parser)
    args = parser.parse_args()
    check_store_arguments(parser, args)
    if not args.epochs > 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    for name in ("batch_size", "train"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if problem := count_problem(args.val):
        parser.error(f"--val {problem}")

    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    from snnlib import data
    from snnlib.progress import tqdm
    from snnlib.tiers import conversion as C
    from snnlib.tiers.conversion import numerics

    numerics.use_numerics(numerics.fast())
    torch.manual_seed(args.seed)
    cifar = data.load_cifar10("train")
    train_idx, val_idx = data.validation_split(cifar.labels)
    train_idx, val_idx = train_idx[:args.train], val_idx[first_per_class(cifar.labels[val_idx],
                                                                         args.val)]
    x = C.images_to_tensor(cifar.images[train_idx])
    y = torch.as_tensor(cifar.labels[train_idx]).long()
    x_val = C.images_to_tensor(cifar.images[val_idx])
    y_val = torch.as_tensor(cifar.labels[val_idx]).long()
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    x, x_val = (x - mean) / std, (x_val - mean) / std

    activation = {"gelu": nn.GELU, "relu": nn.ReLU}[args.act]
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[args.pool]

    def norm(width: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(width, momentum=0.4, eps=1e-12)  # airbench's momentum 0.6
        bn.weight.requires_grad_(False)
        return bn

    def conv(c_in: int, c_out: int) -> nn.Conv2d:
        layer = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        nn.init.dirac_(layer.weight.data[:c_in])
        return layer

    def group(c_in: int, c_out: int) -> nn.Sequential:
        if args.order == "after":
            return nn.Sequential(conv(c_in, c_out), norm(c_out), activation(), pool(2),
                                 conv(c_out, c_out), norm(c_out), activation())
        return nn.Sequential(conv(c_in, c_out), pool(2), norm(c_out), activation(),
                             conv(c_out, c_out), norm(c_out), activation())

    class Float32Conv(nn.Conv2d):
        """A convolution computed in float32 under bfloat16 autocast."""

        def forward(self, v):
            with torch.autocast("cpu", enabled=False):
                return super().forward(v.float())

    class Scale(nn.Module):
        def forward(self, v):
            return v / 9

    whitening = (Float32Conv if args.whiten_fp32 else nn.Conv2d)(3, 24, 2, bias=True)
    net = nn.Sequential(whitening, activation(), group(24, 64),
                        group(64, 256), group(256, 256), pool(3), nn.Flatten(),
                        nn.Linear(256, 10, bias=False), Scale())
    with torch.no_grad():  # the whitening layer, from the first 5,000 images' 2 x 2 patches
        patches = x[:5000].unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5)
        patches = patches.reshape(-1, 12).double()
        m = torch.zeros(12, dtype=torch.float64) if args.exact else patches.mean(0)
        values, vectors = torch.linalg.eigh((patches - m).T @ (patches - m) / len(patches))
        filters = (vectors.T.flip(0) / torch.sqrt(values.flip(0) + 5e-4)[:, None]).float()
        filters = torch.cat([filters, -filters]).reshape(24, 3, 2, 2)
        net[0].weight.copy_(filters)
        net[0].weight.requires_grad_(False)
        net[0].bias.copy_(-(filters.flatten(1) @ m.float()))
    net = net.to(memory_format=torch.channels_last)

    bs = args.batch_size
    total = int(args.epochs * math.ceil(len(x) / bs))
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr, wd = 11.5 / kilostep, 0.0153 * bs / kilostep
    lr_bias = 64 * lr
    lr_whiten = lr if args.exact else lr_bias
    norm_biases = [mod.bias for mod in net.modules() if isinstance(mod, nn.BatchNorm2d)]
    fast = {id(t) for t in norm_biases} | {id(net[0].bias)}
    others = [t for t in net.parameters() if t.requires_grad and id(t) not in fast]
    opt = torch.optim.SGD([dict(params=[net[0].bias], lr=lr_whiten, weight_decay=wd / lr_whiten),
                           dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                           dict(params=others, lr=lr, weight_decay=wd / lr)],
                          momentum=0.85, nesterov=True)
    base_lr = [g["lr"] for g in opt.param_groups]
    schedule = np.interp(np.arange(1 + total), [0, int(0.23 * total), total],
                         [0.2, 1, 0.07 if args.exact else 0])
    alpha = 0.95 ** 5 * (np.arange(total + 1) / total) ** 3
    def snapshot() -> dict:
        return {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    # the running average of Lookahead: from the start, or (airbench94's code) taken first
    # at the first averaging step of the fourth epoch
    average, lookahead_from = (None, 3) if args.exact else (snapshot(), 0)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")
    g = torch.Generator().manual_seed(args.seed)
    first_flips = torch.rand(len(x), generator=g) < 0.5

    def crops_and_flips(images, flips):
        images = torch.where(flips[:, None, None, None], images.flip(3), images)
        padded = F.pad(images, (2,) * 4, mode="reflect")
        dy = torch.randint(0, 5, (len(images),), generator=g)
        dx = torch.randint(0, 5, (len(images),), generator=g)
        out = torch.empty_like(images)
        for i in range(5):
            for j in range(5):
                chosen = (dy == i) & (dx == j)
                if chosen.any():
                    out[chosen] = padded[chosen, :, i:i + 32, j:j + 32]
        return out

    def lookahead(decay: float) -> None:
        with torch.no_grad():
            state = net.state_dict()
            for k, v in average.items():
                v.lerp_(state[k], 1 - decay)
                state[k].copy_(v)

    def accuracy(tta: bool) -> float:
        net.eval()
        preds = []
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            for i in range(0, len(x_val), 1000):
                v = x_val[i:i + 1000].contiguous(memory_format=torch.channels_last)
                logits = net(v).float()
                if tta:
                    logits = logits + net(v.flip(3)).float()
                    padded = F.pad(v, (1,) * 4, mode="reflect")
                    for moved in (padded[..., :32, :32], padded[..., 2:, 2:]):
                        moved = moved.contiguous(memory_format=torch.channels_last)
                        logits = logits + 0.5 * (net(moved).float() + net(moved.flip(3)).float())
                preds.append(logits.argmax(1))
        net.train()
        return float((torch.cat(preds) == y_val).float().mean())

    step, epoch, start, epoch_s = 0, 0, time.perf_counter(), []
    while step < total:
        if epoch == 3:  # the whitening layer's bias stops learning
            base_lr[0] = 0.0
        t0 = time.perf_counter()
        order = torch.randperm(len(x), generator=g)
        augmented = crops_and_flips(x, first_flips ^ bool(epoch % 2))
        seen, summed = 0, 0.0
        for first in tqdm(range(0, len(x), bs), desc=f"epoch {epoch + 1}", leave=False):
            if step >= total:
                break
            idx = order[first:first + bs]
            with torch.autocast("cpu", torch.bfloat16):
                out = net(augmented[idx].contiguous(memory_format=torch.channels_last))
            loss = loss_fn(out.float(), y[idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for group_, base in zip(opt.param_groups, base_lr):
                group_["lr"] = base * schedule[step]
            opt.step()
            step += 1
            seen, summed = seen + len(idx), summed + float(loss.detach())
            if step % 5 == 0 and epoch >= lookahead_from:
                if average is None:
                    average = snapshot()
                else:
                    lookahead(alpha[step])
        if args.exact and average is not None:
            lookahead(1.0)  # airbench94: every epoch ends on the average
        epoch += 1
        epoch_s.append(time.perf_counter() - t0)
        print(f"epoch {epoch}: loss {summed / seen:.3f} ({epoch_s[-1]:.0f} s)", flush=True)
    if average is not None:
        lookahead(1.0)  # the weights end on the average
    train_min = (time.perf_counter() - start) / 60
    result = {"split": "validation (last 500 training images per class)",
              "train_images": len(x), "val_images": len(x_val), "epochs": args.epochs,
              "pool": args.pool, "activation": args.act, "order": args.order,
              "batch_size": bs, "seed": args.seed, "exact": args.exact,
              "whiten_fp32": args.whiten_fp32, "train_min": round(train_min, 2),
              "epoch_s": [round(s, 1) for s in epoch_s],
              "val_accuracy": accuracy(False), "val_accuracy_tta": accuracy(True)}
    print(f"{args.pool} pooling, {args.act}: {train_min:.2f} min of training, validation "
          f"{100 * result['val_accuracy']:.2f}%, with test-time augmentation "
          f"{100 * result['val_accuracy_tta']:.2f}%", flush=True)
    print_and_store(args, result, "airbench_reference.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
