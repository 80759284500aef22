"""Benchmark: ``torch.compile`` (``module.compile=true``) on CFNet-R50, eager vs compiled.

Inference at one 512² image and a batch-2 training step at 256², both channels_last + bf16
autocast (the CPU defaults). Reports the one-off compile time (first call) and the steady-state
time of both.

    python benchmarks/compile_speed.py

Saves benchmarks/results/compile_speed.{json,md}. Not a test.
"""

from __future__ import annotations

import sys
import time

import torch

from cfnet.lit.losses import segmentation_loss
from model_speed import build, timed
from results_files import markdown, save_results


def first_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rows(reps: int) -> list[dict]:
    out = []
    for task, size, batch in (("inference", 512, 1), ("training step", 256, 2)):
        for compiled in (False, True):
            torch.manual_seed(0)
            net = build("cfnet").to(memory_format=torch.channels_last)
            net = net.eval() if task == "inference" else net.train()
            if compiled:  # as SegmentationModule.configure_model does
                net.compile()
                net.forward_train = torch.compile(net.forward_train)
            images = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
            masks = torch.randint(0, 21, (batch, size, size))

            def step(net=net, images=images, masks=masks, task=task):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    if task == "inference":
                        with torch.no_grad():
                            return net(images)
                    loss = segmentation_loss(
                        net.forward_train(images), masks, aux_weight=0.2, se_weight=0.2,
                        ignore_index=255,
                    )["total"]  # fmt: skip
                loss.backward()

            first = first_call(step)
            steady = timed(step, reps)
            out.append({"task": task, "size": size, "batch": batch, "compiled": compiled,
                        "first_call_s": round(first, 1), "steady_s": round(steady, 3)})  # fmt: skip
            print(out[-1], file=sys.stderr, flush=True)
    return out


def main() -> None:
    result = {"rows": rows(reps=3)}
    text = "### torch.compile, CFNet-R50, channels_last + bf16\n\n" + markdown(result["rows"])
    print(text)
    save_results("compile_speed", result, text + "\n")


if __name__ == "__main__":
    main()
