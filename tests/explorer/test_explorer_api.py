"""The explorer's API in process (Starlette's TestClient): the numbers a click returns against the
model's own maps computed separately, one forward pass per image, bad uploads refused in one line
while the server goes on, large pictures resized as the slide protocol resizes, FCN and
``use_acf=false`` models, and a page that loads nothing from elsewhere.

The explorer is built as ``python -m cfnet.explore`` builds it (``conf/explore.yaml`` composed,
``load_model``, ``build_explorer``); only the socket and uvicorn are left out. References are
computed without the explorer: ``Segmentor.cooccurrence`` / ``forward`` on the dataset's image,
class areas counted with numpy.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient

from cfnet.cli.model_loading import load_model
from cfnet.data.transforms import eval_transform
from cfnet.explore import build_explorer
from cfnet.explorer.app import STATIC, create_app, listen
from support.configs import compose_config
from support.fuzz_files import encode, noise_png, png_with_size
from support.training import make_checkpoint


def client_for(ckpt: Path, *overrides: str) -> tuple[TestClient, object]:
    """(a TestClient of the explorer of ``ckpt``, the explorer), as cfnet.explore builds it."""
    cfg = compose_config("explore", [f"ckpt_path={ckpt}", *overrides])
    explorer = build_explorer(cfg, load_model(cfg))
    return TestClient(create_app(explorer, cfg.host)), explorer


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("explorer"), "synthetic", varied=True)


@pytest.fixture(scope="module")
def served(ckpt) -> tuple[TestClient, object]:
    return client_for(
        ckpt,
        "dataset.sizes={train:4,val:4,test:4}",
        "dataset.image_size=64",
        "dataset.base_size=64",
    )


def floats(text: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4").reshape(shape)


def test_a_click_returns_the_maps_and_prediction_the_model_computes(served):
    client, explorer = served
    summary = client.post("/api/open", json={"index": 1}).json()
    assert summary["size"] == [64, 64] and summary["note"] is None
    # the reference: the dataset's image through the model, without the explorer
    image, _, name = explorer.dataset.read(1)
    assert summary["name"] == name
    card = explorer.card
    x = eval_transform(mean=card.mean, std=card.std)(image=image)["image"][None]
    with torch.no_grad():
        maps = explorer.net.cooccurrence(x)
        probs = explorer.net(x).softmax(1)[0]
    (h, w), (kh, kw) = maps.query_size, maps.key_size
    assert summary["query_grid"] == [h, w] and summary["key_grid"] == [kh, kw]
    for y, x_ in [(0, 0), (37, 21), (63, 63), (20, 50)]:
        answer = client.get(f"/api/images/val-1/query?y={y}&x={x_}").json()
        t = (y * h // 64) * w + x_ * w // 64  # the query cell holding the pixel
        assert answer["cell"] == [t // w, t % w]
        rows = floats(answer["maps"], answer["maps_shape"])  # H×(K+1)×M
        heads, k = maps.prior.shape[1:]
        assert rows.shape == (heads, k + 1, kh * kw)
        np.testing.assert_allclose(rows[:, :k], maps.components[0, :, :, t].numpy(), atol=1e-7)
        np.testing.assert_allclose(rows[:, k], maps.probability[0, :, t].numpy(), atol=1e-7)
        np.testing.assert_allclose(answer["prior"], maps.prior[0].numpy(), atol=1e-7)
        assert answer["class"] == int(probs[:, y, x_].argmax())
        assert answer["probability"] == pytest.approx(float(probs[:, y, x_].max()), abs=1e-6)
        # the classes the mass falls on: each key cell is a 16×16 block of the predicted mask
        predicted = probs.argmax(0).numpy()
        blocks = predicted.reshape(kh, 64 // kh, kw, 64 // kw).transpose(0, 2, 1, 3)
        counts = np.stack([(blocks == c).mean((2, 3)).ravel() for c in range(7)], 1)  # M×C
        np.testing.assert_allclose(answer["mass"], rows @ counts, atol=1e-6)
        np.testing.assert_allclose(answer["share"], counts.mean(0), atol=1e-6)


def test_one_forward_pass_per_image_and_clicks_answered_from_what_is_held(served):
    client, explorer = served
    passes = []
    hook = explorer.net.backbone.register_forward_hook(lambda *_: passes.append(1))
    try:
        client.post("/api/open", json={"index": 2})
        for y, x in [(1, 1), (10, 40), (63, 0), (30, 30)] * 3:
            assert client.get(f"/api/images/val-2/query?y={y}&x={x}").status_code == 200
        client.post("/api/open", json={"index": 2})  # held: no second pass
        assert client.get("/api/images/val-2/prediction.png").status_code == 200
    finally:
        hook.remove()
    assert len(passes) == 1
    name = explorer.dataset.sample_name(3)
    assert client.post("/api/open", json={"name": name}).json()["key"] == "val-3"


def tiny_png_with_size(width: int, height: int) -> bytes:
    """A valid 32×32 PNG whose header declares ``width``×``height`` (a decompression bomb's)."""
    return png_with_size(noise_png(np.random.default_rng(0)), width, height)


BAD_UPLOADS = {  # name: (bytes, status, the message)
    "notes.txt": (b"not a picture\n", 400, r"cannot read image 'notes\.txt': Pillow cannot read"),
    "empty.png": (b"", 400, r"upload 'empty\.png' is empty \(0 bytes\)"),
    "huge.jpg": (bytes(50 * 2**20), 413, r"upload 'huge\.jpg' is 50\.0 MB, more than the 20 MB"),
    "bomb.png": (
        tiny_png_with_size(20000, 20000),
        400,
        r"image 'bomb\.png' declares (20000×20000 = )?400,000,000 pixels, more than the "
        r"89,478,485 that cfnet reads .*refused from its header",
    ),
    "cut.png": (encode(np.zeros((40, 40, 3), np.uint8), "PNG")[:60], 400, r"'cut\.png'"),
}


@pytest.mark.parametrize("name", list(BAD_UPLOADS))
def test_a_bad_upload_gets_one_clear_line_and_the_server_goes_on(served, name):
    client, _ = served
    data, status, message = BAD_UPLOADS[name]
    response = client.post("/api/upload", content=data, headers={"x-filename": name})
    assert response.status_code == status
    error = response.json()["error"]
    assert re.search(message, error), error
    assert "\n" not in error and "/tmp" not in error  # one line, naming the upload, not a temp file
    good = encode(np.full((20, 30, 3), 90, np.uint8), "PNG")
    answer = client.post("/api/upload", content=good, headers={"x-filename": "ok.png"})
    assert answer.status_code == 200 and answer.json()["size"] == [20, 30]


def test_a_large_upload_is_resized_as_the_slide_protocol_resizes(served):
    client, explorer = served
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (150, 200, 3), np.uint8)
    summary = client.post(
        "/api/upload", content=encode(picture, "PNG"), headers={"x-filename": "big photo.png"}
    ).json()
    assert explorer.limits.max_size == 64  # dataset.base_size of this checkpoint's dataset
    assert summary["original_size"] == [150, 200]
    assert summary["size"] == [48, 64]  # long side 64, 150 × 64 / 200 = 48
    assert "resized from 200×150 to 64×48" in summary["note"]
    shown = np.asarray(Image.open(client.get(f"/api/images/{summary['key']}/image.png")))
    reference = torch.nn.functional.interpolate(  # bilinear, as evaluation resizes
        torch.from_numpy(picture).permute(2, 0, 1)[None].float(),
        size=(48, 64), mode="bilinear", align_corners=False,
    )[0].permute(1, 2, 0).round().clamp(0, 255).numpy()  # fmt: skip
    np.testing.assert_array_equal(shown, reference)


def test_bad_requests_are_answered_in_one_line(served):
    client, _ = served
    checks = [
        (client.post("/api/open", json={"index": 99}), 400, "index=99: the val split has images"),
        (client.post("/api/open", json={"name": "nope"}), 404, "no val image named 'nope'"),
        (client.post("/api/open", content=b"{"), 400, "the request is not JSON"),
        (client.get("/api/images/val-0/query?y=1&x=1"), 404, "is not open"),
    ]
    client.post("/api/open", json={"index": 0})
    checks += [
        (client.get("/api/images/val-0/query?y=64&x=0"), 400, "lies outside the 64×64 image"),
        (client.get("/api/images/val-0/query?y=a&x=0"), 400, "y='a': an integer"),
    ]
    for response, status, message in checks:
        assert response.status_code == status
        assert message in response.json()["error"]


@pytest.mark.parametrize("model", [("model=fcn",), ("model.use_acf=false",)])
def test_models_without_acf_show_the_prediction_and_say_there_is_no_map(tmp_path, model):
    client, _ = client_for(make_checkpoint(tmp_path, "synthetic", True, model))
    message = client.get("/api/info").json()["message"]
    assert "no ACF module" in message
    assert ("FCN" if model == ("model=fcn",) else "model.use_acf=false") in message
    assert client.post("/api/open", json={"index": 0}).json()["message"] == message
    answer = client.get("/api/images/val-0/query?y=5&x=5").json()
    assert answer["message"] == message and "maps" not in answer
    assert 0 < answer["probability"] <= 1 and answer["class_name"]
    matrix = client.get("/api/cooccurrence").json()
    assert matrix == {"state": "unavailable", "message": message}


def test_the_matrix_of_the_split_is_computed_once_in_the_background(served):
    client, explorer = served
    deadline = time.monotonic() + 120
    while (matrix := client.get("/api/cooccurrence").json())["state"] == "computing":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert matrix["state"] == "done" and matrix["images"] == len(explorer.dataset) == 4
    assert len(matrix["lift"]) == len(matrix["label_cooccurrence"]) == 7
    assert matrix["strongest_images"]
    for entry in matrix["strongest_images"]:
        lifts = [image["lift"] for image in entry["images"]]
        assert lifts == sorted(lifts, reverse=True)
        for image in entry["images"]:
            # the point: the centre of a query cell (8×8 pixels here) mostly of class a
            y, x = image["point"]
            assert y % 8 == x % 8 == 4
            _, mask, _ = explorer.dataset.read(image["index"])
            assert (mask[y - 4 : y + 4, x - 4 : x + 4] == entry["a"]).mean() > 0.5


def test_it_listens_on_loopback_and_the_page_loads_nothing_from_elsewhere(served):
    client, _ = served
    assert compose_config("explore", ["ckpt_path=x"]).host == "127.0.0.1"
    with listen("127.0.0.1", 0) as sock:
        assert sock.getsockname()[0] == "127.0.0.1"
        with pytest.raises(
            ValueError, match=r"cannot listen on host=127\.0\.0\.1 port=\d+: .*port=0"
        ):
            listen("127.0.0.1", sock.getsockname()[1])
    # a page on another site reaching the explorer through DNS rebinding names another host
    assert (
        TestClient(client.app, base_url="http://evil.example").get("/api/info").status_code == 400
    )
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|@font-face", text), path
        assert client.get(f"/static/{path.name}").status_code == 200 or path.name == "index.html"
