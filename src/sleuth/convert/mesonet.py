"""Build MesoNet (Meso4 / MesoInception4, Afchar et al. 2018) ONNX graphs from Keras HDF5 weights.

No torch and no Keras: the four ``.h5`` files (Keras 2.1.5 layout, one group per layer) are read
with h5py and the network is written directly with ``onnx.helper``.

Graph contract (same for every variant):

* input ``input``: float32 ``[N, 256, 256, 3]`` NHWC RGB in ``[0, 1]`` (Keras layout, so a
  preprocessed image goes in unchanged);
* outputs ``logit`` ``[N, 1]`` (pre-sigmoid) and ``p_real`` ``[N, 1]`` (sigmoid; P(real)).

Internally the graph transposes to NCHW once, runs Conv/BatchNorm/MaxPool in NCHW and transposes
back to NHWC right before the flatten, so the first Dense layer sees Keras' flatten order.
BatchNormalization uses Keras' default epsilon 1e-3 with the stored moving statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
KERAS_BN_EPS = 1e-3


class GraphBuilder:
    """A tiny helper around ``onnx.helper`` that names nodes and initializers uniquely."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, arr: np.ndarray, prefix: str = "w") -> str:
        from onnx import numpy_helper

        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        name = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name + "_node", **attrs))
        return name

    def conv(
        self,
        x: str,
        weight_oihw: np.ndarray,
        bias: np.ndarray,
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: int = 1,
        stride: int = 1,
    ) -> str:
        w = self.const(weight_oihw.astype(np.float32), "conv_w")
        b = self.const(bias.astype(np.float32), "conv_b")
        k = weight_oihw.shape[2:]
        return self.op(
            "Conv",
            [x, w, b],
            kernel_shape=list(k),
            pads=list(pads),
            dilations=[dilation, dilation],
            strides=[stride, stride],
        )

    def dense(self, x: str, weight_in_out: np.ndarray, bias: np.ndarray) -> str:
        w = self.const(weight_in_out.astype(np.float32), "dense_w")
        b = self.const(bias.astype(np.float32), "dense_b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def model(self, inputs: list[Any], outputs: list[Any], graph_name: str) -> Any:
        from onnx import checker, helper

        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sleuth")
        model.ir_version = 8
        checker.check_model(model)
        return model


def _layer(h5: Any, name: str, key: str) -> np.ndarray:
    return np.asarray(h5[name][name][key + ":0"], dtype=np.float32)


def _layers(h5: Any, prefix: str) -> list[str]:
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs["layer_names"]]
    return [n for n in names if n.startswith(prefix)]


class _MesoBuilder(GraphBuilder):
    def __init__(self, h5: Any) -> None:
        super().__init__()
        self.h5 = h5

    def keras_conv(self, x: str, layer: str, dilation: int = 1) -> str:
        kernel = _layer(self.h5, layer, "kernel")  # (kh, kw, cin, cout)
        bias = _layer(self.h5, layer, "bias")
        kh, kw = kernel.shape[:2]
        # Keras 'same' with stride 1: total padding d*(k-1), split evenly (odd kernels only here)
        ph, pw = dilation * (kh - 1) // 2, dilation * (kw - 1) // 2
        y = self.conv(x, kernel.transpose(3, 2, 0, 1), bias, pads=(ph, pw, ph, pw), dilation=dilation)
        return self.op("Relu", [y])

    def keras_bn(self, x: str, layer: str) -> str:
        g = self.const(_layer(self.h5, layer, "gamma"), "bn_g")
        b = self.const(_layer(self.h5, layer, "beta"), "bn_b")
        m = self.const(_layer(self.h5, layer, "moving_mean"), "bn_m")
        v = self.const(_layer(self.h5, layer, "moving_variance"), "bn_v")
        return self.op("BatchNormalization", [x, g, b, m, v], epsilon=KERAS_BN_EPS)

    def pool(self, x: str, k: int) -> str:
        # Keras MaxPooling2D(pool_size=k, padding='same'): all feature maps here divide evenly
        return self.op("MaxPool", [x], kernel_shape=[k, k], strides=[k, k])

    def inception(self, x: str, convs: list[str]) -> str:
        """Four branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 dilation 2 | 1x1 -> 3x3 dilation 3."""
        c1, c2a, c2b, c3a, c3b, c4a, c4b = convs
        b1 = self.keras_conv(x, c1)
        b2 = self.keras_conv(self.keras_conv(x, c2a), c2b)
        b3 = self.keras_conv(self.keras_conv(x, c3a), c3b, dilation=2)
        b4 = self.keras_conv(self.keras_conv(x, c4a), c4b, dilation=3)
        return self.op("Concat", [b1, b2, b3, b4], axis=1)

    def head(self, x: str, dense: list[str]) -> tuple[str, str]:
        nhwc = self.op("Transpose", [x], perm=[0, 2, 3, 1])
        flat = self.op("Flatten", [nhwc], axis=1)
        h = self.dense(flat, _layer(self.h5, dense[0], "kernel"), _layer(self.h5, dense[0], "bias"))
        h = self.op("LeakyRelu", [h], out="dense16", alpha=0.1)
        k2, b2 = _layer(self.h5, dense[1], "kernel"), _layer(self.h5, dense[1], "bias")
        logit = self.op("Add", [self.op("MatMul", [h, self.const(k2)]), self.const(b2)], out="logit")
        p = self.op("Sigmoid", [logit], out="p_real")
        return logit, p


def _conv_index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


def build_mesonet(h5_path: Path) -> Any:
    """Return an ``onnx.ModelProto`` for the Meso4 or MesoInception4 weights in ``h5_path``."""
    import h5py
    from onnx import TensorProto, helper

    with h5py.File(h5_path, "r") as h5:
        convs = sorted(_layers(h5, "conv2d_"), key=_conv_index)
        bns = sorted(_layers(h5, "batch_normalization_"), key=_conv_index)
        dense = sorted(_layers(h5, "dense_"), key=_conv_index)
        if len(bns) != 4 or len(dense) != 2 or len(convs) not in (4, 16):
            raise ValueError(f"{h5_path.name}: not a Meso4/MesoInception4 weight file")
        gb = _MesoBuilder(h5)
        x = gb.op("Transpose", ["input"], perm=[0, 3, 1, 2])
        if len(convs) == 4:  # Meso4
            for conv, bn, k in zip(convs, bns, (2, 2, 2, 4), strict=True):
                x = gb.pool(gb.keras_bn(gb.keras_conv(x, conv), bn), k)
        else:  # MesoInception4: two inception blocks (7 convs each), then two 5x5 convs
            x = gb.pool(gb.keras_bn(gb.inception(x, convs[0:7]), bns[0]), 2)
            x = gb.pool(gb.keras_bn(gb.inception(x, convs[7:14]), bns[1]), 2)
            x = gb.pool(gb.keras_bn(gb.keras_conv(x, convs[14]), bns[2]), 2)
            x = gb.pool(gb.keras_bn(gb.keras_conv(x, convs[15]), bns[3]), 4)
        gb.head(x, dense)
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 256, 256, 3])
        outs = [
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("p_real", TensorProto.FLOAT, ["N", 1]),
        ]
        return gb.model([inp], outs, "mesonet")


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter: ``weights`` (.h5) -> ``model.onnx``. Deterministic; no torch."""
    import onnx

    model = build_mesonet(Path(artefacts["weights"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "model.onnx"
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return {"onnx": out}


def convert_ensemble(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter for an ensemble: every ``.h5`` artefact ``<name>`` -> ``onnx_<name>``."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    produced: dict[str, Path] = {}
    for name, path in sorted(artefacts.items()):
        if not str(path).endswith(".h5"):
            continue
        out = out_dir / f"{name}.onnx"
        tmp = out.with_suffix(".onnx.tmp")
        onnx.save(build_mesonet(Path(path)), str(tmp))
        tmp.replace(out)
        produced[f"onnx_{name}"] = out
    if not produced:
        raise ValueError("convert_ensemble: no .h5 artefacts")
    return produced
