"""Repairs applied once, at load time, to ONNX files as their packages ship them.

The OpenCV Zoo int8 "block-quantised" files have two problems in onnxruntime:
  * SFace lists its (unused, stale) fp32 weight names as graph inputs, so a
    session demands them as feeds and refuses to run;
  * every run dequantises every weight again (DequantizeLinear on constant
    inputs), which costs more than the convolutions on a small CPU.
We drop stale inputs, fold each constant DequantizeLinear into an fp32
initializer, and make the batch (and for detectors the spatial) dims dynamic.
The weights then equal what the int8 file encodes, bit for bit in fp32.

One more rewrite is for speed only: onnxruntime runs SFace's convolutions in
its blocked NCHWc layout but has no blocked PRelu, so it converts the tensor
out of that layout and back around each of SFace's 27 PRelus. Written as
a*x + (1-a)*Relu(x), the same function in ops that stay blocked, SFace runs
about twice as fast on one core (bench/results/lfw.md), with outputs equal to
float rounding.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def fold_constant_dequantize(model: onnx.ModelProto) -> int:
    """Replace DequantizeLinear nodes whose inputs are all initializers by an
    fp32 initializer holding their output. Returns how many were folded."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    kept, folded = [], []
    for node in g.node:
        if node.op_type != "DequantizeLinear" or not all(i in inits for i in node.input if i):
            kept.append(node)
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
                if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
        if scale.size == 1:
            w = (q - zero.reshape(())) * scale.reshape(())
        elif block:
            # Blocked quantisation: one scale per `block` consecutive elements along axis.
            cut = [slice(None)] * q.ndim
            cut[axis] = slice(0, q.shape[axis])
            s = np.repeat(scale, block, axis=axis)[tuple(cut)]
            z = np.repeat(zero, block, axis=axis)[tuple(cut)]
            w = (q - z) * s
        else:
            shape = [1] * q.ndim
            shape[axis] = -1
            w = (q - zero.reshape(shape)) * scale.reshape(shape)
        folded.append(numpy_helper.from_array(w.astype(np.float32), node.output[0]))
    del g.node[:]
    g.node.extend(kept)
    g.initializer.extend(folded)
    return len(folded)


def prune_graph(model: onnx.ModelProto) -> None:
    """Drop initializers nothing reads, and graph inputs that are initializers or
    that no node reads (the stale inputs that stop SFace from running)."""
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    names = {i.name for i in keep}
    inputs = [i for i in g.input if i.name not in names and i.name in used]
    del g.input[:]
    g.input.extend(inputs)


def make_dims_dynamic(model: onnx.ModelProto, input_dims: dict[int, str]) -> None:
    """Name the given dims of the first input (e.g. {0: "N"}) and every output dim
    but the last, and drop stale shape annotations."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, name in input_dims.items():
        dims[axis].dim_param = name
    for out in model.graph.output:
        odims = out.type.tensor_type.shape.dim
        for k in range(len(odims) - 1):
            odims[k].dim_param = f"{out.name}_d{k}"
    del model.graph.value_info[:]


def batch_free_reshapes(model: onnx.ModelProto) -> None:
    """Reshape targets of the form [1, -1, C] become [0, -1, C] (0 copies the
    input's batch size), so heads written for batch 1 accept any batch."""
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            target = numpy_helper.to_array(inits[node.input[1]])
            if target.ndim == 1 and target.size >= 2 and target[0] == 1 and -1 in target[1:]:
                fixed = target.copy()
                fixed[0] = 0
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(fixed.astype(np.int64), node.input[1]))


def prelu_as_relu(model: onnx.ModelProto) -> int:
    """Rewrite PRelu(x, a) with a constant slope a as a*x + (1-a)*Relu(x), the
    same function in ops onnxruntime keeps in its blocked layout. Returns how
    many were rewritten."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, rewritten = [], 0
    for node in g.node:
        if node.op_type != "PRelu" or node.input[1] not in inits:
            nodes.append(node)
            continue
        x, slope = node.input
        out = node.output[0]
        complement = numpy_helper.from_array(
            (1 - numpy_helper.to_array(inits[slope])).astype(np.float32), f"{out}_one_minus_slope")
        g.initializer.append(complement)
        nodes += [helper.make_node("Mul", [x, slope], [f"{out}_slope_x"]),
                  helper.make_node("Relu", [x], [f"{out}_relu"]),
                  helper.make_node("Mul", [f"{out}_relu", complement.name], [f"{out}_relu_scaled"]),
                  helper.make_node("Add", [f"{out}_slope_x", f"{out}_relu_scaled"], [out])]
        rewritten += 1
    del g.node[:]
    g.node.extend(nodes)
    return rewritten


def repair(path, *, spatial_dynamic: bool = False) -> bytes:
    """Load, repair and re-serialise an ONNX file; returns the model bytes."""
    model = onnx.load(str(path))
    prune_graph(model)
    fold_constant_dequantize(model)
    prune_graph(model)
    make_dims_dynamic(model, {0: "N", 2: "H", 3: "W"} if spatial_dynamic else {0: "N"})
    batch_free_reshapes(model)
    prelu_as_relu(model)
    onnx.checker.check_model(model)
    return model.SerializeToString()
