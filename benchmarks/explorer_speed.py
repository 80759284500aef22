"""How fast the explorer (``cfnet.explore``) answers: the first pass of an image, then each click.

The quickstart CFNet (``conf/train.yaml`` with the synthetic recipe: ResNet-10-T at output stride
8, a 32-wide head, H=4 heads × K=2; random weights unless ``--ckpt``) behind the explorer's web
app, in process (Starlette's TestClient: the HTTP handling and the JSON, without a socket), on
512×512 pictures (``max_size`` 512, so they are not shrunk):

* first pass: an upload answered (PNG decoded, one forward pass, the co-occurrence maps held);
* click: a query at a random pixel answered (the rows of every head and component, the class
  masses), in ms; switching heads or components on the page costs no request at all.

    python benchmarks/explorer_speed.py [--ckpt <best.ckpt>] [--threads 2] [--clicks 200]
        [--note "what else ran on the machine"]

Prints markdown tables and saves benchmarks/results/explorer_speed.{json,md}. The machine's load
average before and after is recorded: on a shared machine the numbers are upper bounds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image
from starlette.testclient import TestClient

import cfnet.cli.config  # noqa: F401  (config resolvers)
from cfnet.analysis.cooccurrence import acf_shape, map_megabytes, no_map_reason
from cfnet.explorer.app import create_app
from cfnet.explorer.session import ModelCard
from cfnet.explorer.state import Explorer, Limits
from results_files import markdown, save_results

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512


def quickstart_module(ckpt: Path | None):
    """The quickstart's SegmentationModule: from ``ckpt``, or built with random weights."""
    from cfnet.lit import SegmentationModule

    if ckpt is not None:
        return SegmentationModule.from_checkpoint(ckpt).eval()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train")
    torch.manual_seed(0)
    return instantiate(cfg.module).eval()


def picture(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a checkpoint (default: random weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--passes", type=int, default=3, help="images opened (first passes)")
    parser.add_argument("--clicks", type=int, default=200, help="clicks timed on the last one")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    module = quickstart_module(args.ckpt)
    hp, net = module.hparams, module.net
    card = ModelCard(
        list(hp.class_names), [list(c) for c in hp.palette], list(hp.mean), list(hp.std),
        hp.ignore_index, no_map_reason(net),
    )  # fmt: skip
    limits = Limits(
        max_size=SIZE, max_map_mb=4096, max_upload_mb=20, keep_images=2, matrix_images=None
    )
    explorer = Explorer(net, card, limits, None, "val", {"dataset_note": "benchmark"})
    client = TestClient(create_app(explorer))
    heads, k = acf_shape(net)

    client.post("/api/upload", content=picture(99), headers={"x-filename": "warm-up.png"})
    first = []
    for seed in range(args.passes):
        data = picture(seed)
        start = time.perf_counter()
        answer = client.post("/api/upload", content=data, headers={"x-filename": f"{seed}.png"})
        first.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    key = answer.json()["key"]
    rng = np.random.default_rng(0)
    clicks = []
    for y, x in rng.integers(0, SIZE, (args.clicks, 2)):
        start = time.perf_counter()
        reply = client.get(f"/api/images/{key}/query?y={y}&x={x}")
        clicks.append(1000 * (time.perf_counter() - start))
        assert reply.status_code == 200, reply.text
    size = len(reply.content)

    model = f"CFNet {hp.model['backbone']}, OS {hp.model['output_stride']}, H={heads} K={k}"
    rows = [
        {
            "model": model + ("" if args.ckpt else ", random weights"),
            "image": f"{SIZE}×{SIZE}",
            "threads": args.threads,
            "maps held (MiB)": round(map_megabytes((SIZE, SIZE), heads, k, 8), 1),
            "first pass (s), median": round(statistics.median(first), 3),
            "click (ms), median": round(statistics.median(clicks), 2),
            "click (ms), 90th pct": round(float(np.percentile(clicks, 90)), 2),
            "click answer (kB)": round(size / 1000, 1),
        }
    ]
    load_after = os.getloadavg()
    text = markdown(rows)
    text += (
        f"\n\nLoad average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load_after)}."
    )
    if args.note:
        text += f" {args.note}"
    print(text)
    save_results(
        "explorer_speed",
        {
            "rows": rows,
            "first_pass_s": [round(s, 4) for s in first],
            "clicks": args.clicks,
            "checkpoint": str(args.ckpt) if args.ckpt else None,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "note": args.note,
        },
        text,
    )


if __name__ == "__main__":
    main()
