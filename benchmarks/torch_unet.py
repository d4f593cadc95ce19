"""The same U-Net as unet-demo's classroom model, in PyTorch, timed on the CPU.

Runs only inside the benchmark's own environment (`.venv-bench`, `pip install torch==2.13.0`);
torch is not a project dependency. Prints one JSON line with training images/s.

Example:
    .venv-bench/bin/python benchmarks/torch_unet.py --size 128 --base 16 --depth 3 --batch 16
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch norm and ReLU (bias off before norm)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TorchUNet(nn.Module):
    """Classic U-Net: max-pool down, 2x2 transposed-conv up, concatenated skips, sigmoid head."""

    def __init__(self, in_channels: int = 1, base: int = 16, depth: int = 3):
        super().__init__()
        filters = [base * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for level in range(depth):
            self.down.append(conv_block(channels, filters[level]))
            channels = filters[level]
        self.bottleneck = conv_block(channels, filters[depth])
        self.up = nn.ModuleList()
        self.decode = nn.ModuleList()
        for level in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(filters[level + 1], filters[level], 2, stride=2))
            self.decode.append(conv_block(2 * filters[level], filters[level]))
        self.head = nn.Conv2d(filters[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block in zip(self.up, self.decode, strict=True):
            x = up(x)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--base", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch default")
    parser.add_argument("--bf16", action="store_true",
                        help='train under torch.autocast("cpu", dtype=torch.bfloat16)')
    parser.add_argument("--channels-last", action="store_true",
                        help="keep images and weights in channels_last memory format")
    parser.add_argument("--matmul", action="store_true",
                        help="print torch's float32 and bfloat16 matmul GFLOP/s instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.matmul:
        print(json.dumps({"framework": f"pytorch {torch.__version__}",
                          "float32_gflops": matmul_gflops(torch.float32),
                          # Smaller: without native bfloat16 it runs ~100x slower.
                          "bfloat16_gflops": matmul_gflops(torch.bfloat16, 1024, 3)}))
        return
    torch.manual_seed(0)
    model = TorchUNet(base=args.base, depth=args.depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(args.images, 1, args.size, args.size)
    y = (torch.rand(args.images, 1, args.size, args.size) > 0.5).float()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def epoch(count: int) -> None:
        for start in range(0, count, args.batch):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(x[start : start + args.batch])
            # The loss in float32, as Keras keeps it under mixed precision.
            loss = loss_fn(logits.float(), y[start : start + args.batch])
            loss.backward()
            optimizer.step()

    model.train()
    epoch(2 * args.batch)  # warm-up
    start = time.perf_counter()
    epoch(args.images)
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "images_per_s": args.images / seconds,
        "params": params, "threads": torch.get_num_threads(),
        "precision": "bfloat16 autocast" if args.bf16 else "float32",
        "channels_last": args.channels_last,
    }))


def matmul_gflops(dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N square matmul throughput of torch in ``dtype`` (GFLOP/s)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


if __name__ == "__main__":
    main()
