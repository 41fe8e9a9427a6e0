"""Convert Minivision's MiniFASNet anti-spoofing weights (PyTorch) to the ONNX files vultus ships.

    pip install -e '.[train]'                       # torch (CPU wheel); inference needs onnxruntime alone
    python train/convert_minifasnet.py              # writes src/vultus/models/weights/minifasnet-*.onnx
                                                    # and tests/data/minifasnet_reference.json

Input: ../shared/data/models/silent_face_minifasnet/resources/anti_spoof_models/
  2.7_80x80_MiniFASNetV2.pth and 4_0_0_80x80_MiniFASNetV1SE.pth (Apache-2.0, Minivision,
  Silent-Face-Anti-Spoofing @ b6d5f04), legacy torch pickles of a state_dict saved from a
  DataParallel wrapper ("module." prefixes).

The network is rebuilt here from the state_dict itself: every layer's channels, kernel and
groups are read off the weight shapes, and the structure (which layers stride, where the
residual shortcuts and squeeze-excitation blocks are, the 5x5 "conv_6_dw" kernel for 80x80
input) follows the authors' description of MiniFASNet. A rebuilt network that did not match
would fail load_state_dict(strict=True), and the outputs are checked against the sample images.

Each exported graph takes (N, 3, 80, 80) float32 BGR values 0-255 (no scaling, as the authors'
ToTensor) and returns (N, 3) softmax probabilities (class 1 = live), so batching is over faces.

The reference outputs (torch, float32) on real images are written to tests/data so the test
suite can check the ONNX files without torch: per image, the YuNet box used and each
network's probabilities. tests/test_liveness.py recomputes them with torch when it is there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VULTUS_DATA", ROOT.parent / "shared" / "data"))
SOURCE = DATA / "models" / "silent_face_minifasnet" / "resources" / "anti_spoof_models"
WEIGHTS = ROOT / "src" / "vultus" / "models" / "weights"
REFERENCE_JSON = ROOT / "tests" / "data" / "minifasnet_reference.json"

# (source .pth, shipped .onnx); the zoom of each is in vultus.liveness.passive.NETWORKS.
PAIRS = (("2.7_80x80_MiniFASNetV2.pth", "minifasnet-v2.onnx"),
         ("4_0_0_80x80_MiniFASNetV1SE.pth", "minifasnet-v1se.onnx"))

# Real images the reference outputs are computed on (relative to DATA): the authors' own three
# samples, and live and print frames of NUAA, and a live and two screen-replay crops of micro_print_screen.
REFERENCE_IMAGES = (
    "antispoof_samples/images/sample/image_T1.jpg",
    "antispoof_samples/images/sample/image_F1.jpg",
    "antispoof_samples/images/sample/image_F2.jpg",
    "antispoof/nuaa/live/0001/0001_00_00_01_0.jpg",
    "antispoof/nuaa/spoof/0001/0001_00_00_01_0.jpg",
    "antispoof/micro_print_screen/live/arnold_original.jpg",
    "antispoof/micro_print_screen/spoof/arnold_screen.jpg",
    "antispoof/micro_print_screen/spoof/dennis_screen.jpg",
)


def load_state_dict(path: Path) -> OrderedDict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return OrderedDict((k.removeprefix("module."), v) for k, v in state.items())


def build_network(state: OrderedDict):
    """A MiniFASNet (V1, V2, V1SE or V2SE) shaped by `state`'s weights."""
    import torch
    from torch import nn

    def conv_shape(prefix):
        return tuple(state[prefix + ".weight"].shape)  # out, in/groups, kh, kw

    class ConvBnAct(nn.Module):
        """conv (no bias) + batch norm, + PReLU unless `linear`; names as in the weights."""

        def __init__(self, prefix, stride=1, linear=False):
            super().__init__()
            out_c, in_per_group, kh, kw = conv_shape(prefix + ".conv")
            depthwise = in_per_group == 1 and kh > 1
            in_c = out_c if depthwise else in_per_group
            self.conv = nn.Conv2d(in_c, out_c, (kh, kw), stride=stride, padding=0 if kh == 5 else kh // 2,
                                  groups=out_c if depthwise else 1, bias=False)
            self.bn = nn.BatchNorm2d(out_c)
            self.prelu = None if linear else nn.PReLU(out_c)

        def forward(self, x):
            x = self.bn(self.conv(x))
            return x if self.prelu is None else self.prelu(x)

    class SqueezeExcite(nn.Module):
        def __init__(self, prefix):
            super().__init__()
            mid, ch = conv_shape(prefix + ".fc1")[:2]
            self.fc1 = nn.Conv2d(ch, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.fc2 = nn.Conv2d(mid, ch, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(ch)

        def forward(self, x):
            w = x.mean(dim=(2, 3), keepdim=True)
            w = torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(w))))))
            return x * w

    class Bottleneck(nn.Module):
        """1x1 expand, 3x3 depthwise, 1x1 project; with a shortcut (and SE where the weights have one)
        inside a stage, strided and without shortcut between stages."""

        def __init__(self, prefix, residual):
            super().__init__()
            self.conv = ConvBnAct(prefix + ".conv")
            self.conv_dw = ConvBnAct(prefix + ".conv_dw", stride=1 if residual else 2)
            self.project = ConvBnAct(prefix + ".project", linear=True)
            self.residual = residual
            self.se_module = SqueezeExcite(prefix + ".se_module") if prefix + ".se_module.fc1.weight" in state else None

        def forward(self, x):
            y = self.project(self.conv_dw(self.conv(x)))
            if not self.residual:
                return y
            if self.se_module is not None:
                y = self.se_module(y)
            return x + y

    class Stage(nn.Module):
        def __init__(self, prefix):
            super().__init__()
            count = len({k.split(".")[2] for k in state if k.startswith(prefix + ".model.")})
            self.model = nn.Sequential(*[Bottleneck(f"{prefix}.model.{i}", residual=True) for i in range(count)])

        def forward(self, x):
            return self.model(x)

    class MiniFASNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = ConvBnAct("conv1", stride=2)
            self.conv2_dw = ConvBnAct("conv2_dw")
            self.conv_23 = Bottleneck("conv_23", residual=False)
            self.conv_3 = Stage("conv_3")
            self.conv_34 = Bottleneck("conv_34", residual=False)
            self.conv_4 = Stage("conv_4")
            self.conv_45 = Bottleneck("conv_45", residual=False)
            self.conv_5 = Stage("conv_5")
            self.conv_6_sep = ConvBnAct("conv_6_sep")
            self.conv_6_dw = ConvBnAct("conv_6_dw", linear=True)
            emb, flat = state["linear.weight"].shape
            self.linear = nn.Linear(flat, emb, bias=False)
            self.bn = nn.BatchNorm1d(emb)
            self.prob = nn.Linear(emb, state["prob.weight"].shape[0], bias=False)

        def forward(self, x):
            for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                          self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
                x = stage(x)
            return self.prob(self.bn(self.linear(x.flatten(1))))

    net = MiniFASNet()
    net.load_state_dict(state, strict=True)
    return net.eval()


class WithSoftmax:
    """The exported graph: network then softmax over the three classes."""

    def __new__(cls, net):
        import torch
        from torch import nn

        class _G(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return torch.softmax(self.net(x), dim=1)

        return _G().eval()


def export(net, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(WithSoftmax(net), torch.zeros(2, 3, 80, 80), str(path),
                      input_names=["patches_bgr"], output_names=["probabilities"],
                      dynamic_axes={"patches_bgr": {0: "n"}, "probabilities": {0: "n"}}, opset_version=17,
                      dynamo=False)


def reference_inputs(data: Path) -> list[tuple[str, tuple[int, int, int, int], list[np.ndarray]]]:
    """(image, authors' box of its largest YuNet face, per network the uint8 BGR patch) per reference image."""
    from vultus.engine import Engine
    from vultus.imageio import load_image
    from vultus.liveness.passive import NETWORKS, authors_box, authors_patch, to_bgr

    engine = Engine()
    out = []
    for rel in REFERENCE_IMAGES:
        img = load_image(data / rel)
        faces = engine.detect(img)
        face = max(faces, key=lambda f: f.box.area)
        box = authors_box(face.box)
        bgr = to_bgr(img)
        out.append((rel, box, [authors_patch(bgr, box, scale) for _, scale in NETWORKS]))
    return out


def torch_probabilities(nets, patches: list[np.ndarray]) -> list[list[float]]:
    import torch

    with torch.no_grad():
        return [torch.softmax(net(torch.from_numpy(p.transpose(2, 0, 1)[None].astype(np.float32))), dim=1)[0]
                .tolist() for net, p in zip(nets, patches, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--reference", type=Path, default=REFERENCE_JSON)
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    nets = []
    for source, target in PAIRS:
        net = build_network(load_state_dict(SOURCE / source))
        export(net, args.out / target)
        nets.append(net)
        sha = hashlib.sha256((args.out / target).read_bytes()).hexdigest()
        print(f"{target}: {(args.out / target).stat().st_size} bytes, sha256 {sha}")

    sessions = [ort.InferenceSession(str(args.out / t), providers=["CPUExecutionProvider"]) for _, t in PAIRS]
    rows, worst = [], 0.0
    refs = reference_inputs(DATA)
    for rel, box, patches in refs:
        ref = torch_probabilities(nets, patches)
        for sess, p, r in zip(sessions, patches, ref, strict=True):
            got = sess.run(None, {"patches_bgr": p.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
            worst = max(worst, float(np.abs(got - np.array(r)).max()))
        rows.append({"image": rel, "box_ltwh": list(box),
                     "probabilities": {t: [round(v, 7) for v in r] for (_, t), r in zip(PAIRS, ref, strict=True)}})
    # The batched path too: all patches of one network in one run.
    for k, (sess, (_, t)) in enumerate(zip(sessions, PAIRS, strict=True)):
        batch = np.stack([p[k].transpose(2, 0, 1) for _, _, p in refs]).astype(np.float32)
        got = sess.run(None, {"patches_bgr": batch})[0]
        want = np.array([r["probabilities"][t] for r in rows])
        worst = max(worst, float(np.abs(got - want).max()))
    args.reference.parent.mkdir(parents=True, exist_ok=True)
    args.reference.write_text(json.dumps({
        "source": "train/convert_minifasnet.py: torch float32 outputs of the original state dicts",
        "torch": torch.__version__, "patch": "vultus.liveness.passive.authors_patch of box_ltwh (YuNet, largest face)",
        "images": rows}, indent=1) + "\n")
    print(f"{len(rows)} reference images; ONNX vs torch max |difference| {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("ONNX outputs differ from torch by more than 1e-4")


if __name__ == "__main__":
    main()
