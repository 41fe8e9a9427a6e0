"""Run an ONNX graph in PyTorch, node by node, so gradients flow back to its input.

Cloaking needs the gradient of an embedding with respect to the image's pixels,
which onnxruntime does not give. Rather than a second copy of each network, the
very graphs vultus runs in onnxruntime (SFace after `models.onnx_tools.repair`,
dlib's ResNet as `models.dlib_onnx` builds it) are evaluated here op by op with
torch functions: the same weights, the same order of operations. Only the ops
those two graphs use are supported; anything else is refused when the module is
built, never silently approximated. Nodes whose inputs are all constant (SFace's
weight reshapes) are evaluated once, at build time. Tests check the outputs
against onnxruntime on real faces.

Imports torch at module level: only `privacy.cloak` imports this module, and
only once it has checked that torch is installed.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from vultus.errors import ModelError


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads_2d(pads) -> tuple[list[int], bool]:
    """ONNX 2-D pads [top, left, bottom, right] as F.pad's [left, right, top, bottom], and whether symmetric."""
    top, left, bottom, right = pads
    return [left, right, top, bottom], (top == bottom and left == right)


def _conv(x, w, b, a):
    # channels-last: torch's CPU kernels for it are several times faster, depthwise convolutions 30x
    x = x.contiguous(memory_format=torch.channels_last)
    pads = a.get("pads", [0, 0, 0, 0])
    fpad, symmetric = _pads_2d(pads)
    if symmetric:
        padding = (pads[0], pads[1])
    else:
        x, padding = F.pad(x, fpad), (0, 0)
    return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])), padding=padding,
                    dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1))


def _pool(kind):
    def run(x, a):
        if a.get("ceil_mode", 0) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ModelError(f"{kind} with ceil_mode or auto_pad is not supported")
        fpad, _ = _pads_2d(a.get("pads", [0, 0, 0, 0]))
        kernel, strides = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
        if any(fpad):
            x = F.pad(x, fpad, value=float("-inf") if kind == "MaxPool" else 0.0)
        return (F.max_pool2d if kind == "MaxPool" else F.avg_pool2d)(x, kernel, strides)
    return run


def _pad(x, pads, *rest, mode=b"constant"):
    if mode not in (b"constant", "constant"):
        raise ModelError(f"Pad mode {mode!r} is not supported")
    pads = [int(p) for p in pads.tolist()]
    n = len(pads) // 2
    begins, ends = pads[:n], pads[n:]
    fpad: list[int] = []
    for axis in reversed(range(n)):  # F.pad lists the last axis first
        fpad += [begins[axis], ends[axis]]
    value = float(rest[0]) if rest and rest[0] is not None and rest[0].numel() else 0.0
    return F.pad(x, fpad, value=value)


def _gemm(x, w, c, a):
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    return y if c is None else y + a.get("beta", 1.0) * c


def _batchnorm(x, scale, bias, mean, var, a):
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))


def _reshape(x, shape):
    target = [int(s) for s in shape.tolist()]
    target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


def _run(op: str, inputs: list, a: dict):
    """One ONNX node's output from torch tensors (None for an omitted optional input)."""
    if op == "Conv":
        return _conv(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, a)
    if op in ("Add", "Sub", "Mul", "Div"):
        x, y = inputs
        return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](x, y)
    if op == "Relu":
        return F.relu(inputs[0])
    if op == "PRelu":
        return torch.where(inputs[0] >= 0, inputs[0], inputs[0] * inputs[1])
    if op == "BatchNormalization":
        return _batchnorm(*inputs[:5], a)
    if op in ("Dropout", "Identity"):
        return inputs[0]
    if op == "Flatten":
        return torch.flatten(inputs[0], start_dim=a.get("axis", 1))
    if op == "Gemm":
        return _gemm(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, a)
    if op == "MatMul":
        return inputs[0] @ inputs[1]
    if op == "Reshape":
        return _reshape(inputs[0], inputs[1])
    if op == "Transpose":
        return inputs[0].permute(*a["perm"])
    if op in ("MaxPool", "AveragePool"):
        return _pool(op)(inputs[0], a)
    if op == "GlobalAveragePool":
        return inputs[0].mean(dim=(2, 3), keepdim=True)
    if op == "Pad":
        return _pad(*inputs, mode=a.get("mode", b"constant"))
    raise ModelError(f"ONNX op {op} is not supported by the torch runner")


class OnnxModule(torch.nn.Module):
    """An ONNX graph with one input and one output as a torch module (inference semantics: batch
    normalisation uses its running statistics, dropout is the identity)."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        g = model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise ModelError(f"expected one input and one output, got {len(g.input)} and {len(g.output)}")
        self.input_name, self.output_name = g.input[0].name, g.output[0].name
        consts: dict[str, torch.Tensor] = {
            i.name: torch.from_numpy(np.array(numpy_helper.to_array(i))) for i in g.initializer}
        steps = []
        for node in g.node:
            a = _attrs(node)
            if node.op_type == "Constant":
                consts[node.output[0]] = torch.from_numpy(np.array(numpy_helper.to_array(a["value"])))
                continue
            if all(not i or i in consts for i in node.input):  # constant folding (weight reshapes)
                consts[node.output[0]] = _run(node.op_type, [consts[i] if i else None for i in node.input], a)
                continue
            _run_check(node.op_type)
            steps.append((node.op_type, list(node.input), node.output[0], a))
        self._steps = _fold_batchnorm(steps, consts)
        for op, ins, _, _ in self._steps:
            if op == "Conv":
                consts[ins[1]] = consts[ins[1]].contiguous(memory_format=torch.channels_last)
        for k, t in enumerate(consts.values()):
            self.register_buffer(f"c{k}", t.float() if t.is_floating_point() else t, persistent=False)
        self._const_names = {name: f"c{k}" for k, name in enumerate(consts)}

    def forward(self, x):
        values = {self.input_name: x}
        for op, ins, out, a in self._steps:
            args = [None if not i else values[i] if i in values else getattr(self, self._const_names[i])
                    for i in ins]
            values[out] = _run(op, args, a)
        return values[self.output_name]


def _fold_batchnorm(steps: list, consts: dict) -> list:
    """Conv followed by inference BatchNormalization (the conv's only reader, constant statistics) becomes one
    Conv with scaled weights and a shifted bias: the same function, one op fewer per layer."""
    readers: dict[str, int] = {}
    for _, ins, _, _ in steps:
        for i in ins:
            readers[i] = readers.get(i, 0) + 1
    producer = {out: k for k, (_, _, out, _) in enumerate(steps)}
    dropped = set()
    for k, (op, ins, out, a) in enumerate(steps):
        if op != "BatchNormalization" or ins[0] not in producer or not all(i in consts for i in ins[1:5]):
            continue
        j = producer[ins[0]]
        cop, cins, cout, ca = steps[j]
        if cop != "Conv" or readers.get(cout, 0) != 1 or cins[1] not in consts:
            continue
        scale, bias, mean, var = (consts[i].double() for i in ins[1:5])
        gamma = scale / torch.sqrt(var + a.get("epsilon", 1e-5))
        w = consts[cins[1]].double() * gamma[:, None, None, None]
        b0 = consts[cins[2]].double() if len(cins) > 2 and cins[2] else torch.zeros_like(mean)
        wname, bname = f"{cout}_folded_w", f"{cout}_folded_b"
        consts[wname] = w.float()
        consts[bname] = ((b0 - mean) * gamma + bias).float()
        steps[j] = (cop, [cins[0], wname, bname], out, ca)  # the conv now writes the batch norm's output
        dropped.add(k)
    return [s for k, s in enumerate(steps) if k not in dropped]


_SUPPORTED = {"Conv", "Add", "Sub", "Mul", "Div", "Relu", "PRelu", "BatchNormalization", "Dropout", "Identity",
              "Flatten", "Gemm", "MatMul", "Reshape", "Transpose", "MaxPool", "AveragePool", "GlobalAveragePool",
              "Pad"}


def _run_check(op: str) -> None:
    if op not in _SUPPORTED:
        raise ModelError(f"ONNX op {op} is not supported by the torch runner")
