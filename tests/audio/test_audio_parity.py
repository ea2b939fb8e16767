"""Numerical parity of our AASIST / AASIST-L / RawGAT-ST with the upstream golden outputs.

Tolerances are the recommended ones of models/REFERENCE_OUTPUTS.md: logits abs 1e-3,
p_bonafide abs 1e-4, embedding abs 1e-3. The model inputs come from our own decode path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sleuth.convert.aasist import sha256_float32le, sinc_filterbank
from sleuth.media.audio import decode_audio, fit_window

from .conftest import DATA, GOLDEN_KEYS, MODEL_NAMES, golden, needs_data

pytestmark = needs_data

LOGITS_TOL = 1e-3
P_TOL = 1e-4
EMB_TOL = 1e-3


def _records(name: str) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = golden(name)["results"][GOLDEN_KEYS[name]]
    return recs


def _embedding(name: str, rec: dict[str, Any]) -> list[float]:
    key = "penultimate_7d" if name == "rawgat-st" else "hidden_160d"
    values: list[float] = rec[key]["values"]
    return values


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    """input_id -> 64600-sample model input from our decoder (same ids for all three models)."""
    out = {}
    for rec in _records("aasist"):
        wave, _ = decode_audio(DATA / rec["shared_path"])
        out[rec["input_id"]] = fit_window(wave)
    return out


def test_sinc_filterbank_matches_recorded_values():
    fb = golden("aasist")["fixed_sinc_filterbank"]
    ref = np.asarray(fb["values_9_significant_digits_exact_float32"], dtype=np.float32)
    ours = sinc_filterbank(70, 128)
    assert ours.shape == tuple(fb["shape"]) == (70, 129)
    assert np.array_equal(ours, ref)  # bit-exact, not just within tolerance
    assert sha256_float32le(ours) == fb["sha256_float32le"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_matches_golden(name: str, detectors: dict[str, Any], inputs: dict[str, np.ndarray]):
    det = detectors[name]
    recs = _records(name)
    x = np.stack([inputs[r["input_id"]] for r in recs])
    # batches of 2: exercises the dynamic batch axis (big batches are slow on CPU)
    outs = [det.session.run(None, {"wave": x[i : i + 2]}) for i in range(0, len(x), 2)]
    logits = np.concatenate([o[0] for o in outs])
    emb = np.concatenate([o[1] for o in outs])
    worst = {"logits": 0.0, "p": 0.0, "emb": 0.0}
    for i, rec in enumerate(recs):
        d_logit = float(np.abs(logits[i] - np.asarray(rec["logits"])).max())
        p_bona = 1.0 - det.postprocess(logits[i], x[i])
        d_p = abs(p_bona - rec["p_bonafide"])
        d_emb = float(np.abs(emb[i] - np.asarray(_embedding(name, rec))).max())
        assert d_logit <= LOGITS_TOL, (rec["input_id"], d_logit)
        assert d_p <= P_TOL, (rec["input_id"], d_p)
        assert d_emb <= EMB_TOL, (rec["input_id"], d_emb)
        assert (logits[i][1] > logits[i][0]) == (rec["pred"] == "bonafide")
        worst = {"logits": max(worst["logits"], d_logit), "p": max(worst["p"], d_p), "emb": max(worst["emb"], d_emb)}
    print(f"{name}: max |d logits| {worst['logits']:.2e}, |d p| {worst['p']:.2e}, |d emb| {worst['emb']:.2e}")
    # a batch of one gives the same numbers
    single = det.session.run(["logits"], {"wave": x[5:6]})[0]
    assert np.abs(single[0] - logits[5]).max() < 1e-4


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_class_returns_p_fake(name: str, detectors: dict[str, Any], inputs: dict[str, np.ndarray]):
    det = detectors[name]
    recs = _records(name)[:3] + _records(name)[-1:]
    # windows of any length go in; the model makes them 64600 long
    wave7, _ = decode_audio(DATA / recs[-1]["shared_path"])  # the 1.5 s chirp: tiled inside
    items = [inputs[r["input_id"]] for r in recs[:-1]] + [wave7]
    p_fake = det(items)
    for p, rec in zip(p_fake, recs, strict=True):
        assert isinstance(p, float)
        assert abs(p - (1.0 - rec["p_bonafide"])) <= P_TOL
    with pytest.raises(ValueError):
        det.preprocess(np.zeros((2, 64600), dtype=np.float32))


def test_onnx_has_dynamic_batch(model_paths: dict[str, dict[str, Path]]):
    import onnx

    for name in MODEL_NAMES:
        graph = onnx.load(str(model_paths[name]["onnx"])).graph
        dims = graph.input[0].type.tensor_type.shape.dim
        assert graph.input[0].name == "wave"
        assert dims[0].dim_param and dims[1].dim_value == 64600, name


@pytest.mark.parametrize("name", ["aasist-l", "rawgat-st"])
def test_torch_definition_matches_golden(name: str, model_paths: dict[str, dict[str, Path]], inputs):
    """Our torch definition itself (what the ONNX was exported from), on a tiled and a resampled input."""
    torch = pytest.importorskip("torch")
    if name == "rawgat-st":
        from sleuth.convert.rawgat import build_torch_model
    else:
        from sleuth.convert.aasist import build_torch_model
    model = build_torch_model(model_paths[name]["weights"])
    recs = [r for r in _records(name) if r["input_id"] in ("in0", "in5")]
    x = torch.from_numpy(np.stack([inputs[r["input_id"]] for r in recs]))
    with torch.no_grad():
        logits, emb = model(x)
    for i, rec in enumerate(recs):
        assert np.abs(logits[i].numpy() - np.asarray(rec["logits"])).max() <= LOGITS_TOL
        assert np.abs(emb[i].numpy() - np.asarray(_embedding(name, rec))).max() <= EMB_TOL


def test_variant_is_recognised_from_the_checkpoint():
    pytest.importorskip("torch")
    from sleuth.convert.aasist import load_state_dict, variant_of

    assert variant_of(load_state_dict(DATA / "models/aasist/AASIST.pth")) == "AASIST"
    assert variant_of(load_state_dict(DATA / "models/aasist/AASIST-L.pth")) == "AASIST-L"
    with pytest.raises(ValueError):
        variant_of(load_state_dict(DATA / "models/rawgat_st/RawGAT_ST_mul_Best_epoch.pth"))
