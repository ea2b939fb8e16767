"""Build a random-weight SpeciesNet release folder and record what the upstream package makes of it.

Run by hand, offline, in a throwaway venv that has the upstream package (CI never runs this)::

    python3 -m venv .venvs/speciesnet
    .venvs/speciesnet/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx onnx2torch speciesnet \\
        opencv-python-headless seaborn IPython "setuptools<81"   # (yolov5 --no-deps also works)
    .venvs/speciesnet/bin/python scripts/golden/make_speciesnet_golden.py tests/classifier/golden_speciesnet

The release is made the way upstream made the real one (google/cameratrapai#5: ``tf2onnx`` of the Keras
model, then ``onnx2torch.convert`` and ``torch.save`` of the whole module), so the ``.pt`` has the same
structure: a pickled ``torch.fx.GraphModule`` of onnx2torch layers. The network here is a small
EfficientNetV2-like graph written as tf2onnx writes Keras models (NHWC input transposed to NCHW, Conv with
asymmetric "same" padding, BatchNormalization, swish as Sigmoid+Mul, depthwise Conv, squeeze-excite with
ReduceMean, a residual Add, global mean + Squeeze, Dense as MatMul+Add); the weights are random.
Input 480x480x3 like the real classifier (upstream's classifier resizes every crop to 480).

The folder has the release's files and names: ``info.json``, ``always_crop_..._epoch_00148.pt``,
``...labels.txt`` (30 real SpeciesNet labels), ``taxonomy_release.txt``, ``geofence_release.json`` (a
few real-looking rules). Writes into OUT:

* ``release.tar.gz`` - that folder as a gzipped tar of its files, as Kaggle serves it;
* ``images/*.png`` - 480x480 test crops (so no resize happens on either side);
* ``golden.json`` - per image the classifier's raw logits (upstream ``SpeciesNetClassifier``) and, for a
  set of made-up detections / classifications / countries, upstream ``SpeciesNetEnsemble``'s per-box
  ``processed_classification`` (label, score, source).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import uuid
from pathlib import Path

import numpy as np

STEM = "always_crop_99710272_22x8_v12_epoch_00148"
SIZE = 480
SEED = 13

# Real SpeciesNet label strings (google/cameratrapai data/model_package labels and constants.py).
LABELS = [
    "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
    "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human",
    "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle",
    "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal",
    "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog",
    "22976d14-d424-4f18-a67a-d8e1689cefcc;mammalia;carnivora;felidae;leopardus;pardalis;ocelot",
    "1c73c77e-03b0-4e13-b57c-d4854e8266a3;mammalia;carnivora;felidae;leopardus;guttulus;southern tiger cat",
    "55631055-3e0e-4b7a-9612-dedebe9f78b0;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant",
    "7a3f5fb1-8e10-44c8-b040-d0672788540c;mammalia;carnivora;canidae;lycalopex;griseus;argentine gray fox",
    "93638299-45fa-4208-b2d3-33661a629b89;mammalia;carnivora;canidae;cerdocyon;;cerdocyon species",
    "d0d285e1-969c-4015-9449-b827bed7e66c;mammalia;primates;cebidae;sapajus;cay;azaras's capuchin",
    "8e94fb38-c154-45a1-b16d-1a1b10cdfa34;mammalia;primates;cebidae;sapajus;macrocephalus;large-headed capuchin",
    "c36a1356-00ec-4b63-b0ab-555543ad6c14;mammalia;primates;cebidae;cebus;;cebus species",
    "42d30572-ccc4-4ddf-809d-83c047377161;mammalia;primates;cebidae;cebus;capucinus;colombian white-throated capuchin",
    "436ddfdd-bc43-44c3-a25d-34671d3430a0;mammalia;carnivora;ursidae;ursus;americanus;american black bear",
    "85662682-67c1-4ecb-ba05-ba12e2df6b65;mammalia;carnivora;ursidae;ailuropoda;melanoleuca;giant panda",
    "98254337-6ee9-4664-a471-4b1eb0b73c48;mammalia;carnivora;mustelidae;mustela;putorius;western polecat",
    "9c578712-f483-438d-9832-390930fc52c1;mammalia;carnivora;mustelidae;mustela;nudipes;malay weasel",
    "a70c87e9-62bc-41c2-9e36-96fed9136046;mammalia;carnivora;mustelidae;lontra;canadensis;north american river otter",
    "c5ce946f-8f0d-4379-992b-cc0982381f5e;mammalia;cetartiodactyla;cervidae;cervus;canadensis;elk",
    "b9aeb369-cc41-4303-9b95-edcd7bcc8ff6;mammalia;cetartiodactyla;cervidae;blastocerus;dichotomus;marsh deer",
    "6d0bbf09-3e44-4ead-9b18-795cad5268e7;mammalia;cetartiodactyla;cervidae;mazama;rufina;dwarf red brocket",
    "667a4650-a141-4c4e-844e-58cdeaeb4ae1;mammalia;lagomorpha;leporidae;sylvilagus;floridanus;eastern cottontail",
    "975c3069-b79d-43c9-91f1-1f4191b50ac9;mammalia;lagomorpha;leporidae;lepus;tolai;tolai hare",
    "2fd91d27-9832-4332-989a-3f90844cd362;aves;strigiformes;tytonidae;tyto;alba;common barn owl",
    "941db4fe-fbf3-434f-bfb1-f765009d5e7e;aves;piciformes;picidae;melanerpes;carolinus;red-bellied woodpecker",
    "02799ea2-fba0-4883-b27e-b41ae387e884;aves;piciformes;picidae;colaptes;auratus;northern flicker",
    "e4d1e892-0e4b-475a-a8ac-b5c3502e0d55;mammalia;rodentia;sciuridae;;;sciuridae family",
    "ea7e5297-8c71-4c93-a55b-27b1fe8f49de;reptilia;squamata;helodermatidae;heloderma;suspectum;gila monster",
    "837e12c2-f30c-4875-afeb-32d51938f139;aves;galliformes;;;;galliformes order",
]
UNKNOWN = (
    "f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;no cv result;no cv result;no cv result;no cv result;no cv result;no cv result"
)


def _taxonomy() -> list[str]:
    """The labels plus every ancestor taxon they roll up to (made-up uuid5 ids for the added ones)."""
    out = list(LABELS) + [UNKNOWN]
    seen = {";".join(lab.split(";")[1:6]) for lab in out}
    for lab in LABELS:
        f = lab.split(";")
        taxa = f[1:6]
        for depth in range(4, 0, -1):
            anc = taxa[:depth] + [""] * (5 - depth)
            key = ";".join(anc)
            if not anc[0] or key in seen:
                continue
            seen.add(key)
            name = anc[depth - 1] + {4: " species", 3: " family", 2: " order", 1: ""}[depth]
            name = name if depth != 4 else f"{anc[3]} species"
            out.append(f"{uuid.uuid5(uuid.NAMESPACE_URL, key)};{key};{name.strip()}")
    return out


GEOFENCE = {
    "mammalia;carnivora;felidae;leopardus;pardalis": {"allow": {"USA": ["TX", "AZ"], "MEX": [], "BRA": []}},
    "mammalia;carnivora;felidae;leopardus;guttulus": {"allow": {"BRA": [], "ARG": []}},
    "mammalia;proboscidea;elephantidae;loxodonta;africana": {"block": {"USA": [], "CAN": [], "GBR": []}},
    "mammalia;carnivora;ursidae;ursus;americanus": {"allow": {"USA": [], "CAN": [], "MEX": []}},
    "mammalia;carnivora;ursidae;ailuropoda;melanoleuca": {"allow": {"CHN": []}},
    "mammalia;primates;cebidae;sapajus;cay": {"allow": {"BRA": [], "ARG": [], "PRY": [], "BOL": []}},
    "mammalia;primates;cebidae;sapajus;macrocephalus": {"allow": {"BRA": [], "PER": [], "COL": []}},
    "mammalia;cetartiodactyla;cervidae;cervus;canadensis": {"allow": {"USA": [], "CAN": []}, "block": {"USA": ["FL"]}},
    "mammalia;carnivora;canidae;lycalopex;griseus": {"allow": {"ARG": [], "CHL": []}},
    "mammalia;carnivora;mustelidae;mustela;nudipes": {"allow": {"MYS": [], "IDN": []}},
}


def _onnx_model(n_out: int):  # noqa: ANN202
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(SEED)
    nodes: list = []
    inits: list = []

    def w(name: str, *shape: int, scale: float = 0.3) -> str:
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def pos(name: str, n: int) -> str:
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), name))
        return name

    def node(op: str, ins: list[str], out: str, name: str, **attrs) -> str:  # noqa: ANN003
        nodes.append(helper.make_node(op, ins, [out], name=name, **attrs))
        return out

    def swish(x: str, pre: str) -> str:
        s = node("Sigmoid", [x], pre + "/Sigmoid:0", pre + "/Sigmoid")
        return node("Mul", [x, s], pre + "/mul:0", pre + "/mul")

    p = "SpeciesNet/efficientnetv2-m/"
    x = node("Transpose", ["input_1"], p + "stem_conv/Conv2D__6:0", p + "stem_conv/Conv2D__6", perm=[0, 3, 1, 2])
    c = 8
    x = node(
        "Conv",
        [x, w(p + "stem_conv/kernel", c, 3, 3, 3), w(p + "stem_conv/bias", c, scale=0.1)],
        p + "stem_conv/Conv2D:0",
        p + "stem_conv/Conv2D",
        strides=[2, 2],
        pads=[0, 0, 1, 1],
        kernel_shape=[3, 3],
    )
    x = swish(x, p + "stem_activation")
    # fused-MBConv style block with an explicit BatchNormalization (as when tf2onnx does not fold it)
    y = node(
        "Conv",
        [x, w(p + "block1a/kernel", c, c, 3, 3)],
        p + "block1a/Conv2D:0",
        p + "block1a/Conv2D",
        pads=[1, 1, 1, 1],
        kernel_shape=[3, 3],
    )
    y = node(
        "BatchNormalization",
        [
            y,
            pos(p + "block1a/bn/gamma", c),
            w(p + "block1a/bn/beta", c, scale=0.1),
            w(p + "block1a/bn/mean", c, scale=0.1),
            pos(p + "block1a/bn/var", c),
        ],
        p + "block1a/bn/FusedBatchNormV3:0",
        p + "block1a/bn/FusedBatchNormV3",
        epsilon=1e-3,
    )
    y = swish(y, p + "block1a/activation")
    x = node("Add", [y, x], p + "block1a/add/add:0", p + "block1a/add/add")
    # MBConv with depthwise conv and squeeze-excite, stride 2
    e = 16
    y = node(
        "Conv",
        [x, w(p + "block2a/expand/kernel", e, c, 1, 1), w(p + "block2a/expand/bias", e, scale=0.1)],
        p + "block2a/expand_conv/Conv2D:0",
        p + "block2a/expand_conv/Conv2D",
        kernel_shape=[1, 1],
    )
    y = swish(y, p + "block2a/expand_activation")
    y = node(
        "Conv",
        [y, w(p + "block2a/dw/kernel", e, 1, 3, 3), w(p + "block2a/dw/bias", e, scale=0.1)],
        p + "block2a/dwconv2/depthwise:0",
        p + "block2a/dwconv2/depthwise",
        group=e,
        strides=[2, 2],
        pads=[0, 0, 1, 1],
        kernel_shape=[3, 3],
    )
    y = swish(y, p + "block2a/activation")
    s = node("ReduceMean", [y], p + "block2a/se/Mean:0", p + "block2a/se/Mean", axes=[2, 3], keepdims=1)
    s = node(
        "Conv",
        [s, w(p + "block2a/se/r/kernel", 4, e, 1, 1), w(p + "block2a/se/r/bias", 4, scale=0.1)],
        p + "block2a/se_reduce/Conv2D:0",
        p + "block2a/se_reduce/Conv2D",
        kernel_shape=[1, 1],
    )
    s = swish(s, p + "block2a/se_reduce")
    s = node(
        "Conv",
        [s, w(p + "block2a/se/e/kernel", e, 4, 1, 1), w(p + "block2a/se/e/bias", e, scale=0.1)],
        p + "block2a/se_expand/Conv2D:0",
        p + "block2a/se_expand/Conv2D",
        kernel_shape=[1, 1],
    )
    s = node("Sigmoid", [s], p + "block2a/se_expand/Sigmoid:0", p + "block2a/se_expand/Sigmoid")
    y = node("Mul", [y, s], p + "block2a/se_excite/mul:0", p + "block2a/se_excite/mul")
    y = node(
        "Conv",
        [y, w(p + "block2a/project/kernel", 12, e, 1, 1), w(p + "block2a/project/bias", 12, scale=0.1)],
        p + "block2a/project_conv/Conv2D:0",
        p + "block2a/project_conv/Conv2D",
        kernel_shape=[1, 1],
    )
    y = node(
        "Conv",
        [y, w(p + "top/kernel", 24, 12, 1, 1), w(p + "top/bias", 24, scale=0.1)],
        p + "top_conv/Conv2D:0",
        p + "top_conv/Conv2D",
        kernel_shape=[1, 1],
    )
    y = swish(y, p + "top_activation")
    y = node("ReduceMean", [y], p + "avg_pool/Mean:0", p + "avg_pool/Mean", axes=[2, 3], keepdims=1)
    y = node("Squeeze", [y, "squeeze_axes"], p + "avg_pool/Mean_Squeeze__3825:0", p + "avg_pool/Mean_Squeeze__3825")
    inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "squeeze_axes"))
    y = node(
        "MatMul",
        [y, w("SpeciesNet/classifier/MatMul/ReadVariableOp:0", 24, n_out, scale=1.0)],
        "SpeciesNet/classifier/MatMul:0",
        "SpeciesNet/classifier/MatMul",
    )
    node(
        "Add",
        [y, w("SpeciesNet/classifier/BiasAdd/ReadVariableOp:0", n_out, scale=0.5)],
        "classifier",
        "SpeciesNet/classifier/BiasAdd",
    )
    graph = helper.make_graph(
        nodes,
        "SpeciesNet",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__0", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("classifier", TensorProto.FLOAT, ["unk__0", n_out])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _images(out: Path) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(SEED + 1)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    paths = []
    for i, (a, b, c) in enumerate([(1.0, 0.2, 0.1), (0.1, 0.9, 0.3), (0.3, 0.3, 1.0), (0.6, 0.5, 0.4)]):
        img = np.stack([a * xx + 0.2 * yy, b * yy + 0.1, c * (1 - xx) * yy + 0.05], axis=-1)
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        img[blob] = rng.uniform(0, 1, 3)
        arr = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        p = out / f"crop{i}.png"
        Image.fromarray(arr).save(p, optimize=True)
        paths.append(p)
    return paths


def _ensemble_cases() -> list[dict]:
    """Made-up per-box inputs that exercise each rule (detector category/conf, classifier top-5, place)."""
    L = {lab.split(";")[-1]: lab for lab in LABELS}  # noqa: N806
    cases = [
        ("human box, confident detector", "2", 0.9, [("domestic dog", 0.6), ("blank", 0.2)], None, None),
        ("human box, classifier says human", "2", 0.4, [("human", 0.7), ("blank", 0.1)], None, None),
        ("vehicle box, classifier says human", "3", 0.5, [("human", 0.6), ("vehicle", 0.2)], None, None),
        ("vehicle box, confident detector", "3", 0.8, [("blank", 0.6), ("vehicle", 0.2)], None, None),
        ("vehicle box, classifier says vehicle", "3", 0.3, [("vehicle", 0.45), ("blank", 0.3)], None, None),
        ("blank, weak detection", "1", 0.1, [("blank", 0.7), ("ocelot", 0.1)], None, None),
        ("very confident blank", "1", 0.6, [("blank", 0.995), ("ocelot", 0.001)], None, None),
        ("confident species", "1", 0.9, [("ocelot", 0.85), ("southern tiger cat", 0.1)], None, None),
        ("species, animal box", "1", 0.5, [("ocelot", 0.7), ("southern tiger cat", 0.2)], None, None),
        ("geofenced species, allowed sibling", "1", 0.9, [("ocelot", 0.85), ("southern tiger cat", 0.1)], "ARG", None),
        ("geofenced species, no sibling", "1", 0.9, [("african elephant", 0.9), ("elk", 0.05)], "USA", None),
        ("state rule: allowed in TX", "1", 0.9, [("ocelot", 0.9), ("domestic dog", 0.05)], "USA", "TX"),
        ("state rule: not in CA", "1", 0.9, [("ocelot", 0.9), ("domestic dog", 0.05)], "USA", "CA"),
        ("state block: elk in FL", "1", 0.9, [("elk", 0.9), ("marsh deer", 0.05)], "USA", "FL"),
        ("roll up to genus", "1", 0.6, [("azaras's capuchin", 0.4), ("large-headed capuchin", 0.35)], None, None),
        (
            "roll up to family",
            "1",
            0.6,
            [("azaras's capuchin", 0.3), ("colombian white-throated capuchin", 0.25), ("cebus species", 0.15)],
            None,
            None,
        ),
        ("roll up to order", "1", 0.6, [("western polecat", 0.3), ("ocelot", 0.2), ("domestic dog", 0.2)], None, None),
        (
            "roll up past a geofenced genus",
            "1",
            0.6,
            [("azaras's capuchin", 0.4), ("large-headed capuchin", 0.35)],
            "USA",
            None,
        ),
        ("weak everything, animal box", "1", 0.6, [("ocelot", 0.3), ("elk", 0.2), ("tolai hare", 0.1)], None, None),
        ("weak everything, weak box", "1", 0.3, [("ocelot", 0.3), ("elk", 0.2), ("tolai hare", 0.1)], None, None),
        ("bird order", "1", 0.7, [("red-bellied woodpecker", 0.4), ("northern flicker", 0.3)], None, None),
        (
            "a class-level roll up",
            "1",
            0.7,
            [("common barn owl", 0.3), ("red-bellied woodpecker", 0.2), ("galliformes order", 0.2)],
            None,
            None,
        ),
        ("animal-only box called human", "1", 0.6, [("human", 0.8), ("domestic dog", 0.1)], None, None),
    ]
    out = []
    for name, cat, conf, classes, country, admin1 in cases:
        rest = 1.0 - sum(s for _, s in classes)
        filler = [
            lab
            for lab in ("tolai hare", "gila monster", "giant panda", "elk", "marsh deer")
            if lab not in dict(classes)
        ]
        k = 5 - len(classes)
        tail = [(filler[i], round(rest / (k + 1) * (1 - 0.1 * i), 6)) for i in range(k)]
        full = sorted([*classes, *tail], key=lambda t: -t[1])
        out.append(
            {
                "name": name,
                "detection": {
                    "category": cat,
                    "label": {"1": "animal", "2": "human", "3": "vehicle"}[cat],
                    "conf": conf,
                    "bbox": [0.1, 0.2, 0.3, 0.4],
                },
                "classes": [L[n] for n, _ in full],
                "scores": [s for _, s in full],
                "country": country,
                "admin1_region": admin1,
            }
        )
    return out


def main(out: Path) -> None:
    import tempfile

    import onnx2torch
    import torch

    out.mkdir(parents=True, exist_ok=True)
    rel = Path(tempfile.mkdtemp()) / "release"  # only its archive is kept (what Kaggle serves)
    rel.mkdir()
    labels = LABELS
    (rel / f"{STEM}.labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (rel / "taxonomy_release.txt").write_text("\n".join(_taxonomy()) + "\n", encoding="utf-8")
    (rel / "geofence_release.json").write_text(json.dumps(GEOFENCE, indent=1, sort_keys=True) + "\n")
    info = {
        "version": "4.0.2a",
        "type": "always_crop",
        "classifier": f"{STEM}.pt",
        "classifier_labels": f"{STEM}.labels.txt",
        "detector": "https://github.com/agentmorris/MegaDetector/releases/download/v5.0/md_v5a.0.0.pt",
        "taxonomy": "taxonomy_release.txt",
        "geofence": "geofence_release.json",
    }
    (rel / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    gm = onnx2torch.convert(_onnx_model(len(labels)))
    torch.save(gm, rel / f"{STEM}.pt")
    with tarfile.open(out / "release.tar.gz", "w:gz") as tf:
        for f in sorted(rel.iterdir()):
            tf.add(f, arcname=f.name)

    from PIL import Image
    from speciesnet.classifier import SpeciesNetClassifier
    from speciesnet.ensemble import SpeciesNetEnsemble
    from speciesnet.utils import BBox

    img_dir = out / "images"
    img_dir.mkdir(exist_ok=True)
    # upstream fetches info.json's detector URL unless a file of that (sanitized) name exists: run it on a
    # scratch copy with an empty placeholder, so nothing is downloaded and release/ stays as published
    import shutil

    scratch = Path(tempfile.mkdtemp()) / "release"
    shutil.copytree(rel, scratch)
    (scratch / info["detector"].replace(":", "_").replace("/", "_")).write_bytes(b"")
    clf = SpeciesNetClassifier(str(scratch), device="cpu")
    golden: dict = {"labels_file": f"{STEM}.labels.txt", "images": [], "ensemble": []}
    for p in _images(img_dir):
        img = Image.open(p).convert("RGB")
        pre = clf.preprocess(img, bboxes=[BBox(0.0, 0.0, 1.0, 1.0)])
        assert pre is not None
        x = torch.from_numpy(np.stack([pre[0].arr / 255.0]).astype(np.float32))
        with torch.no_grad():
            logits = clf.model(x)[0].numpy()
        res = clf.batch_predict([p.name], [pre], num_classes=5)[0]["classifications_list"][0]
        golden["images"].append(
            {
                "file": f"images/{p.name}",
                "logits": [round(float(v), 6) for v in logits],
                "top5": {"classes": res["classes"], "scores": [round(float(s), 6) for s in res["scores"]]},
            }
        )

    ens = SpeciesNetEnsemble(str(scratch), geofence=True)
    cases = _ensemble_cases()
    for i, case in enumerate(cases):
        fp = f"case{i}"
        det = dict(case["detection"])
        clf_res = {
            fp: {
                "filepath": fp,
                "detections": [{**det, "raw_classifications": {"classes": case["classes"], "scores": case["scores"]}}],
            }
        }
        det_res = {fp: {"filepath": fp, "detections": [det]}}
        geo = {fp: {k: case[k] for k in ("country", "admin1_region") if case[k]}}
        pred = ens.combine([fp], clf_res, det_res, geo)[0]
        processed = pred["detections"][0]["processed_classification"]
        golden["ensemble"].append({**case, "upstream": processed})
    golden["sha256"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(rel.iterdir())}
    golden["sha256"]["release.tar.gz"] = hashlib.sha256((out / "release.tar.gz").read_bytes()).hexdigest()
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {out}: {len(golden['images'])} images, {len(cases)} ensemble cases")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/classifier/golden_speciesnet"))
