"""SpeciesNet's PyTorch release converted to ONNX: parity with the upstream package, and bad input.

The release in ``golden_speciesnet/release.tar.gz`` has the real release's file structure (a pickled
onnx2torch GraphModule, labels, taxonomy, geofence, info.json) with random weights; ``golden.json`` holds
what upstream ``speciesnet`` 5.0.6 computed on it (scripts/golden/make_speciesnet_golden.py). These tests
need torch (the ``convert`` extra), not the upstream package.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

GOLD = Path(__file__).parent / "golden_speciesnet"
STEM = "always_crop_99710272_22x8_v12_epoch_00148"
pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed")


def _golden() -> dict:
    return json.loads((GOLD / "golden.json").read_text())


def _extract(dest: Path) -> Path:
    with tarfile.open(GOLD / "release.tar.gz") as tf:
        tf.extractall(dest, filter="data")
    return dest


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sleuth.convert.speciesnet import convert_release

    out = tmp_path_factory.mktemp("sn") / "served"
    convert_release(GOLD / "release.tar.gz", out)
    return out


def _crop(name: str) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(GOLD / name), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def test_logits_match_upstream(converted: Path) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(converted / "model.onnx"), providers=["CPUExecutionProvider"])
    for img in _golden()["images"]:
        x = _crop(img["file"]).astype(np.float32)[None] / 255.0
        logits = sess.run(None, {"input": x})[0][0]
        np.testing.assert_allclose(logits, img["logits"], atol=1e-3, err_msg=img["file"])


def test_served_folder_gives_upstreams_top5(converted: Path) -> None:
    from sleuth.models.speciesnet import SpeciesNetFolder

    pack = SpeciesNetFolder.open(converted)
    assert pack.model_id == "speciesnet-4.0.2a"
    assert pack.has_range_data and pack.taxonomy_release
    imgs = _golden()["images"]
    preds = pack.classify([_crop(i["file"]) for i in imgs], top_k=5)
    for img, pred in zip(imgs, preds, strict=True):
        assert [lab for lab, _ in pred] == img["top5"]["classes"]
        np.testing.assert_allclose([s for _, s in pred], img["top5"]["scores"], atol=1e-4)


def test_served_info_names_the_copied_release_files(converted: Path) -> None:
    info = json.loads((converted / "info.json").read_text())
    assert info["classifier"] == "model.onnx" and info["source_classifier"] == f"{STEM}.pt"
    for key in ("classifier_labels", "taxonomy", "geofence"):
        assert (converted / info[key]).is_file()


# ----------------------------------------------------------------------------------------- bad input


def _rewrite_pickle(pt: Path, old: bytes, new: bytes) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(pt) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("data.pkl"):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(item, data)
    pt.write_bytes(buf.getvalue())


def test_a_pickle_naming_an_unexpected_class_is_refused_by_name(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import load_classifier
    from sleuth.convert.unpickle import UnexpectedClassError

    pt = _extract(tmp_path) / f"{STEM}.pt"
    _rewrite_pickle(pt, b"torch.nn.modules.activation\nSigmoid\n", b"posix\nsystem\n")
    with pytest.raises(UnexpectedClassError, match=r"posix\.system") as e:
        load_classifier(pt)
    assert str(pt) in str(e.value)


def test_a_layer_class_sleuth_does_not_implement_is_named(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import load_classifier
    from sleuth.convert.unpickle import UnexpectedClassError

    pt = _extract(tmp_path) / f"{STEM}.pt"
    _rewrite_pickle(pt, b"torch.nn.modules.activation\nSigmoid\n", b"torch.nn.modules.activation\nHardtanh\n")
    with pytest.raises(UnexpectedClassError, match=r"torch\.nn\.modules\.activation\.Hardtanh"):
        load_classifier(pt)


def test_labels_that_do_not_match_the_classifier_are_refused(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import ReleaseError, convert_release

    rel = _extract(tmp_path / "rel")
    labels = rel / f"{STEM}.labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(ReleaseError, match=rf"{STEM}\.pt has 30 outputs but {STEM}\.labels\.txt has 29 labels"):
        convert_release(rel, out)
    assert not (out / "model.onnx").exists()


def test_a_folder_without_labels_is_refused_naming_the_file(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import ReleaseError, convert_release

    rel = _extract(tmp_path / "rel")
    (rel / f"{STEM}.labels.txt").unlink()
    with pytest.raises(ReleaseError, match=rf"labels file {STEM}\.labels\.txt named in info\.json is missing"):
        convert_release(rel, tmp_path / "out")


def test_a_folder_without_info_json_is_refused(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import ReleaseError, convert_release

    rel = _extract(tmp_path / "rel")
    (rel / "info.json").unlink()
    with pytest.raises(ReleaseError, match="no info.json"):
        convert_release(rel, tmp_path / "out")


def test_truncated_archive_and_checkpoint_are_refused_naming_the_file(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import ReleaseError, convert_release, load_classifier
    from sleuth.convert.unpickle import CheckpointError

    arc = tmp_path / "release.tar.gz"
    data = (GOLD / "release.tar.gz").read_bytes()
    arc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match=r"release\.tar\.gz: not a readable SpeciesNet archive"):
        convert_release(arc, tmp_path / "out")
    rel = _extract(tmp_path / "rel")
    pt = rel / f"{STEM}.pt"
    pt.write_bytes(pt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"{STEM}\.pt: not a readable PyTorch checkpoint"):
        load_classifier(pt)


def test_keras_release_says_to_use_the_pytorch_variant(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import ReleaseError, convert_release

    rel = _extract(tmp_path / "rel")
    info = json.loads((rel / "info.json").read_text())
    shutil.move(rel / info["classifier"], rel / f"{STEM}.keras")
    info["classifier"] = f"{STEM}.keras"
    (rel / "info.json").write_text(json.dumps(info))
    with pytest.raises(ReleaseError, match="PyTorch variant"):
        convert_release(rel, tmp_path / "out")


def test_shape_gather_cast_unsqueeze_layers_follow_onnx() -> None:
    """Layers a tf2onnx graph may also hold (dynamic reshapes): implemented from the ONNX semantics."""
    import torch

    from sleuth.convert.fx_layers import run_layer
    from sleuth.convert.unpickle import ModuleStub

    def stub(qual: str, **state: object) -> ModuleStub:
        s = type(qual.rsplit(".", 1)[-1], (ModuleStub,), {"qualname": qual})()
        s.__dict__.update(state)
        return s

    o2t = "onnx2torch.node_converters."
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert run_layer(stub(o2t + "shape.OnnxShape", _start=0, _end=None), x).tolist() == [2, 3, 4]
    assert run_layer(stub(o2t + "shape.OnnxShape", _start=1, _end=None), x).tolist() == [3, 4]
    idx = torch.tensor([2, 0])
    assert torch.equal(run_layer(stub(o2t + "gather.OnnxGather", _axis=1), x, idx), x[:, [2, 0]])
    assert torch.equal(run_layer(stub(o2t + "gather.OnnxGather", _axis=0), x, torch.tensor(1)), x[1])
    assert run_layer(stub(o2t + "cast.OnnxCast", torch_dtype=torch.int64), x).dtype == torch.int64
    y = run_layer(stub(o2t + "unsqueeze.OnnxUnsqueezeDynamicAxes"), x, torch.tensor([0, 3]))
    assert tuple(y.shape) == (1, 2, 3, 1, 4)


def test_a_zip_archive_converts_too(tmp_path: Path) -> None:
    from sleuth.convert.speciesnet import convert_release

    rel = _extract(tmp_path / "rel")
    arc = tmp_path / "download"
    with zipfile.ZipFile(arc, "w") as zf:
        for f in sorted(rel.iterdir()):
            zf.write(f, f"v4.0.2a/{f.name}")
    out = convert_release(arc, tmp_path / "out")
    assert out["onnx"].is_file() and json.loads(out["info"].read_text())["version"] == "4.0.2a"
