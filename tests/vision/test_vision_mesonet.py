"""MesoNet ONNX port vs the original Keras outputs (shared/data/models/mesonet/reference_outputs.json)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from .helpers import DATA, ensure_model, needs_data

pytestmark = needs_data

VARIANTS = {
    "Meso4_DF": "mesonet-meso4-df",
    "Meso4_F2F": "mesonet-meso4-f2f",
    "MesoInception_DF": "mesonet-inception-df",
    "MesoInception_F2F": "mesonet-inception-f2f",
}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((DATA / "models/mesonet/reference_outputs.json").read_text())


def test_preprocessing_digests_exact(reference: dict) -> None:
    from sleuth.models.mesonet import preprocess_face

    for inp in reference["inputs"]:
        x = preprocess_face((DATA / inp["shared_path"]).read_bytes())
        assert x.shape == (256, 256, 3) and x.dtype == np.float32
        u8 = np.rint(x * 255).astype(np.uint8)
        assert hashlib.sha256(u8.tobytes()).hexdigest() == inp["model_input"]["sha256_uint8_hwc_after_resize"]
        digest = hashlib.sha256(x.astype("<f4").tobytes()).hexdigest()
        assert digest == inp["model_input"]["sha256_float32le_nhwc"], inp["id"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parity(variant: str, reference: dict) -> None:
    from sleuth.models.mesonet import MesoNet

    m = MesoNet()
    m.load(ensure_model(VARIANTS[variant]), ["CPUExecutionProvider"])
    ref = {r["input_id"]: r for r in reference["results"][variant]["per_input"]}
    items = [(DATA / i["shared_path"]).read_bytes() for i in reference["inputs"]]
    out = m(items)
    dp = dl = 0.0
    for inp, r in zip(reference["inputs"], out, strict=True):
        exp = ref[inp["id"]]
        dp = max(dp, abs(r["p_real"] - exp["p_real"]))
        dl = max(dl, abs(r["logits"]["model"] - exp["logit"]))
        assert r["score"] == pytest.approx(1.0 - r["p_real"])
    print(f"{variant}: max |p_real diff| {dp:.2e}, max |logit diff| {dl:.2e}")
    assert dp <= 1e-4
    assert dl <= 1e-3


def test_converter_deterministic(tmp_path) -> None:
    from sleuth.convert.mesonet import convert

    h5 = DATA / "models/mesonet/MesoInception_DF.h5"
    a = convert({"weights": h5}, tmp_path / "a")["onnx"].read_bytes()
    b = convert({"weights": h5}, tmp_path / "b")["onnx"].read_bytes()
    assert a == b


def test_ensemble_is_mean_of_members(mesonet) -> None:
    from sleuth.models.mesonet import MesoNet

    ref = json.loads((DATA / "models/mesonet/reference_outputs.json").read_text())
    img = (DATA / "faces/df/df00204.jpg").read_bytes()
    r = mesonet([img])[0]
    assert set(r["logits"]) == {"mesoinception_df", "mesoinception_f2f"}
    exp = np.mean([ref["results"][v]["per_input"][0]["p_real"] for v in ("MesoInception_DF", "MesoInception_F2F")])
    assert r["p_real"] == pytest.approx(exp, abs=1e-4)
    assert isinstance(mesonet, MesoNet)


def test_bad_image_bytes(mesonet) -> None:
    with pytest.raises(ValueError):
        mesonet.preprocess(b"")
    with pytest.raises(ValueError):
        mesonet.preprocess(b"not an image at all")
