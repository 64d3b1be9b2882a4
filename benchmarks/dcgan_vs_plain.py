"""Our cnn_gan in the harness against a plain DCGAN loop trained the way pytorch/examples' dcgan trains.

The plain loop uses the same networks (baselines.cnn_gan's generator and discriminator, same config), the
same data (digits, as the harness loads it) and the same batch size and number of steps, fed and trained
as pytorch/examples/dcgan/main.py does:
- a DataLoader over a Dataset whose __getitem__ turns one PIL image into a tensor with
  transforms.Compose([ToTensor(), Normalize(0.5, 0.5)]), shuffle=True, num_workers=2 (the example's
  default `--workers 2`; its worker processes start afresh every epoch, as there), and `.to(device)` per batch;
- float32 throughout, TF32 left at PyTorch's defaults, torch.optim.Adam with its default implementation
  (not fused);
- separate backward passes for D on real and on fake, one generator forward per iteration reused for the
  G step, BCELoss on a sigmoid, and every iteration five `.item()` reads formatted into a log line.
  (The example writes its log lines to stdout; here they go to a buffer so the terminal is not timed.)
Two differences are in the plain loop's favour: drop_last=True (every step has the full batch, as in
ours), and no image files saved every 100 iterations.

The harness side is Runner.train with the suite's default `runner:` block (fused Adam; on CUDA also bf16
autocast, TF32 and channels_last), data resident on the device, losses synced every 25 steps. Both sides
use the same intra-op threads. Targets: >= 1.5x on CPU, >= 3x on CUDA.

    .venv/bin/python benchmarks/dcgan_vs_plain.py [--device cpu|cuda] [--steps 60] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, harness_loop, interleave, machine, median_cpu, median_wall, run_spec, table  # noqa: E402


class PILDigits(torch.utils.data.Dataset):
    """Images kept as uint8 arrays and converted one item at a time, as torchvision datasets do."""

    def __init__(self, u8: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms

        c = u8.shape[1]
        self.arrays = [a.squeeze(-1) if c == 1 else a for a in u8.permute(0, 2, 3, 1).numpy()]
        self.labels = labels.tolist()
        self.mode = "L" if c == 1 else "RGB"
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * c, (0.5,) * c)])

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(np.ascontiguousarray(self.arrays[i]), mode=self.mode)), self.labels[i]


def plain_dcgan(spec, device: torch.device, workers: int) -> Timing:
    """pytorch/examples/dcgan's training loop around our architecture, for spec.budget.steps iterations."""
    from baselines.cnn_gan import CNNDiscriminatorTrunk, CNNGenerator, Discriminator
    from bench.data.datasets import load_dataset

    torch.manual_seed(spec.seed)
    data = load_dataset(spec.dataset)
    c, size = data.train_x.shape[1], data.train_x.shape[-1]
    cfg = spec.adapter_config
    z_dim, width, max_width, feat = cfg.get("z_dim", 64), cfg.get("width", 32), cfg.get("max_width", 256), cfg.get("feature_dim", 256)
    lr, betas = cfg.get("lr_d", 5e-4), tuple(cfg.get("betas", (0.5, 0.999)))
    net_g = CNNGenerator(z_dim, c, size, width, max_width).to(device)
    net_d = Discriminator(CNNDiscriminatorTrunk(c, size, width, feat, max_width), feat).to(device)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=lr, betas=betas)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=cfg.get("lr_g", 5e-4), betas=betas)
    criterion = nn.BCELoss()
    loader = torch.utils.data.DataLoader(
        PILDigits(data.train_x, data.train_y), batch_size=spec.budget.batch_size, shuffle=True, num_workers=workers, drop_last=True
    )
    log = io.StringIO()
    steps = spec.budget.steps

    def go() -> None:
        done = 0
        while done < steps:
            for real_cpu, _ in loader:
                # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
                net_d.zero_grad()
                real = real_cpu.to(device)
                b = real.size(0)
                label = torch.full((b,), 1.0, dtype=real.dtype, device=device)
                output = torch.sigmoid(net_d(real))
                err_d_real = criterion(output, label)
                err_d_real.backward()
                d_x = output.mean().item()
                noise = torch.randn(b, z_dim, device=device)
                fake = net_g(noise)
                label.fill_(0.0)
                output = torch.sigmoid(net_d(fake.detach()))
                err_d_fake = criterion(output, label)
                err_d_fake.backward()
                d_g_z1 = output.mean().item()
                err_d = err_d_real + err_d_fake
                opt_d.step()
                # (2) Update G: maximize log(D(G(z)))
                net_g.zero_grad()
                label.fill_(1.0)
                output = torch.sigmoid(net_d(fake))
                err_g = criterion(output, label)
                err_g.backward()
                d_g_z2 = output.mean().item()
                opt_g.step()
                print(
                    f"[{done}/{steps}] Loss_D: {err_d.item():.4f} Loss_G: {err_g.item():.4f} "
                    f"D(x): {d_x:.4f} D(G(z)): {d_g_z1:.4f} / {d_g_z2:.4f}",
                    file=log,
                )
                done += 1
                if done == steps:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return Timing.of(go)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=None, help="digits resized to this (default: 8 on CPU, 32 on CUDA)")
    ap.add_argument("--workers", type=int, default=2, help="the plain loop's DataLoader workers (pytorch/examples default: 2)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads for both loops (default: the harness default)")
    args = ap.parse_args()
    from bench.core import env

    device = torch.device(args.device)
    size = args.image_size or (32 if device.type == "cuda" else 8)
    threads = env.configure_threads(args.threads)
    print(f"machine: {machine()}; device {device}; {threads} thread(s); digits at {size}x{size}, batch {args.batch_size}\n")
    out = Path(tempfile.mkdtemp(prefix="bench-dcgan-"))
    spec = run_spec("cnn_gan", args.steps, args.batch_size, image_size=None if size == 8 else size, runner={"threads": threads})
    # The harness's fast path sets TF32 flags process-wide; the plain loop gets PyTorch's defaults back.
    tf32_defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)

    def plain(workers: int):
        def run() -> Timing:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_defaults
            return plain_dcgan(spec, device, workers)

        return run

    variants = {
        "harness cnn_gan": lambda: harness_loop(spec, device, out, progress=True),
        f"plain, {args.workers} workers": plain(args.workers),
    }
    if args.workers:
        variants["plain, 0 workers"] = plain(0)
    for fn in variants.values():  # warm-up: kernels, allocator, imports, worker start-up code paths
        fn()
    res = interleave(variants, args.repeats)
    ours_w, ours_c = median_wall(res["harness cnn_gan"]), median_cpu(res["harness cnn_gan"])
    rows = []
    for name, ts in res.items():
        w = median_wall(ts)
        rows.append([name, f"{args.steps / w:.2f}", f"{w / ours_w:.2f}x", f"{median_cpu(ts) / ours_c:.2f}x"])
    print(f"cnn_gan in the harness vs a plain DCGAN loop ({args.steps} steps, median of {args.repeats} interleaved repeats)\n")
    print(table(rows, ["loop", "steps/s", "harness speed-up (wall)", "harness speed-up (process CPU time)"]))
    print("\nProcess CPU time leaves out the DataLoader workers' CPU time (other processes).")


if __name__ == "__main__":
    main()
