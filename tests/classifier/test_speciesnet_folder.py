"""SpeciesNet model folder loader, on a tiny ONNX classifier built here with onnx.helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sleuth.engine.base import ModelError
from sleuth.models.classifier import ClassifierPack
from sleuth.models.speciesnet import SpeciesNetFolder

# Real SpeciesNet label strings (google/cameratrapai speciesnet/classifier_test.py, constants.py).
LABELS = [
    "55631055-3e0e-4b7a-9612-dedebe9f78b0;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant",
    "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog",
    "22976d14-d424-4f18-a67a-d8e1689cefcc;mammalia;carnivora;felidae;leopardus;pardalis;ocelot",
    "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
]
GEOFENCE = {
    "mammalia;carnivora;felidae;leopardus;pardalis": {"allow": {"USA": ["TX", "AZ"], "MEX": [], "BRA": []}},
    "mammalia;proboscidea;elephantidae;loxodonta;africana": {"block": {"USA": [], "CAN": []}},
}
SIZE = 16
# logits = mean RGB (in [0,1]) @ W + B: red -> elephant, green -> dog, blue -> ocelot, dark -> blank
W = np.array([[4.0, 0, 0, -2], [0, 4.0, 0, -2], [0, 0, 4.0, -2]], np.float32)
B = np.array([0, 0, 0, 1.0], np.float32)


def _tiny_onnx(path: Path, nchw: bool = False, n_out: int = 4) -> None:
    shape: list[str | int | None] = ["N", 3, SIZE, SIZE] if nchw else ["N", SIZE, SIZE, 3]
    axes = [2, 3] if nchw else [1, 2]
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(axes, np.int64), "axes"),
        numpy_helper.from_array(W[:, :n_out], "w"),
        numpy_helper.from_array(B[:n_out], "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _folder(tmp_path: Path, *, nchw: bool = False, geofence: bool = True, n_out: int = 4) -> Path:
    d = tmp_path / "speciesnet"
    d.mkdir()
    info = {
        "version": "4.0.1a-test",
        "type": "always_crop",
        "classifier": "classifier.onnx",
        "classifier_labels": "labels.txt",
        "taxonomy": "taxonomy_release.txt",
        "detector": "md_v5a.0.0.pt",
    }
    if geofence:
        info["geofence"] = "geofence_release.json"
        (d / "geofence_release.json").write_text(json.dumps(GEOFENCE))
    (d / "info.json").write_text(json.dumps(info))
    _tiny_onnx(d / "classifier.onnx", nchw=nchw, n_out=n_out)
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    tax = LABELS + ["1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"]
    (d / "taxonomy_release.txt").write_text("\n".join(tax) + "\n")
    return d


def _crop(rgb: tuple[int, int, int], h: int = 40, w: int = 30) -> np.ndarray:
    return np.tile(np.array(rgb, np.uint8), (h, w, 1))


def _expected(rgb: tuple[int, int, int]) -> np.ndarray:
    z = np.array(rgb, np.float64) / 255.0 @ W.astype(np.float64) + B
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("nchw", [False, True])
def test_load_and_classify(tmp_path: Path, nchw: bool) -> None:
    pack = SpeciesNetFolder.open(_folder(tmp_path, nchw=nchw))
    assert isinstance(pack, ClassifierPack)
    assert pack.model_id == "speciesnet-4.0.1a-test"
    assert pack.labels == LABELS
    assert pack.geofence == GEOFENCE and pack.has_range_data is True
    assert pack.taxonomy_release is not None and len(pack.taxonomy_release) == 5
    colours = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (5, 5, 5)]
    preds = pack.classify([_crop(c) for c in colours], top_k=2)
    for i, (c, pred) in enumerate(zip(colours, preds, strict=True)):
        exp = _expected(c)
        assert pred[0][0] == LABELS[i]
        assert len(pred) == 2
        assert pred[0][1] == pytest.approx(exp.max(), abs=1e-5)
    # the Model path (preprocess/predict_batch/postprocess) gives the same top-k
    assert pack([_crop(c) for c in colours])[0][:2] == preds[0]


def test_no_geofence(tmp_path: Path) -> None:
    pack = SpeciesNetFolder.open(_folder(tmp_path, geofence=False))
    assert pack.geofence is None and pack.has_range_data is False


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        SpeciesNetFolder.open(tmp_path / "nope")
    d = _folder(tmp_path)
    pack = SpeciesNetFolder.open(d)
    with pytest.raises(ValueError):
        pack.classify([np.zeros((4, 4), np.float64)])

    (d / "labels.txt").write_text("\n".join(LABELS[:3]) + "\n")
    with pytest.raises(ModelError, match="4 outputs but labels.txt has 3 labels"):
        SpeciesNetFolder.open(d)
    (d / "labels.txt").write_text("\n".join(LABELS[:3] + ["not;a;label"]) + "\n")
    with pytest.raises(ModelError, match="line 4"):
        SpeciesNetFolder.open(d)
    (d / "labels.txt").unlink()
    with pytest.raises(ModelError, match="labels file labels.txt not found"):
        SpeciesNetFolder.open(d)
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")

    (d / "geofence_release.json").write_text(json.dumps({"mammalia;carnivora": {"allow": {"USA": []}}}))
    with pytest.raises(ModelError, match="5-field"):
        SpeciesNetFolder.open(d)
    (d / "geofence_release.json").write_text(json.dumps({"a;b;c;d;e": {"allow": {"US": []}}}))
    with pytest.raises(ModelError, match="alpha-3"):
        SpeciesNetFolder.open(d)
    (d / "geofence_release.json").unlink()
    with pytest.raises(ModelError, match="geofence file geofence_release.json"):
        SpeciesNetFolder.open(d)
    (d / "geofence_release.json").write_text(json.dumps(GEOFENCE))

    info = json.loads((d / "info.json").read_text())
    for name in ("always_crop_v4.keras", "model.pt"):
        (d / name).write_bytes(b"\0")
        (d / "info.json").write_text(json.dumps({**info, "classifier": name}))
        with pytest.raises(ModelError, match="ONNX classifiers only"):
            SpeciesNetFolder.open(d)
    (d / "info.json").write_text(json.dumps({**info, "classifier": "missing.onnx"}))
    with pytest.raises(ModelError, match="missing.onnx not found"):
        SpeciesNetFolder.open(d)
    (d / "info.json").unlink()
    with pytest.raises(ModelError, match="missing info.json"):
        SpeciesNetFolder.open(d)


def test_fewer_outputs_than_labels(tmp_path: Path) -> None:
    d = _folder(tmp_path, n_out=3)
    # the classifier's output dim (3) disagrees with the 4 labels -> refused at load
    with pytest.raises(ModelError, match="3 outputs"):
        SpeciesNetFolder.open(d)
