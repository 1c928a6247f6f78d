"""The original MXNet example's parameters -> multibox (multibox.model.import_mxnet), against the whole original
network run by MXNet 1.9.1 (no MXNet needed here).

tests/fixtures/mxnet_network/ (see its README, made by benchmarks/make_mxnet_network_golden.py) holds, for the
original's vgg16_reduced SSD300, resnet50 SSD512 and inceptionv3 SSD512, the deploy symbol, three BCCD photos as
the network saw them, and its outputs with parameters drawn from a seeded numpy generator. The 100 MB parameter
files are not stored: these tests draw the same arrays again, write them as a ``save_checkpoint`` file whose
bytes must hash to what MXNet wrote, and import that file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from multibox.checkpoint import atomic_save
from multibox.errors import ConfigError, DataError
from multibox.inference import load_checkpoint_model
from multibox.model.backbones.resnet_v2 import FixedGammaBatchNorm2d
from multibox.model.import_mxnet import (
    MXNET_DEPLOY_DETECTION,
    MXNET_EVALUATE_DETECTION,
    VOC_CLASSES,
    import_mxnet_params,
    multibox_network,
    mxnet_checkpoint,
    mxnet_name,
)
from multibox.ops import multibox_detection
from multibox.ops.boxes import VARIANCES

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "mxnet_network"
# Rows whose MXNet scores are closer than this may come out in either order (the scores' float32 rounding
# differs by about 1e-6 between the libraries); such runs of rows are compared as sets.
TIE = 1e-5
ATOL = 1e-4


# fixture case -> the original's --network and --data-shape
CASES = {
    "vgg16_reduced_300": ("vgg16_reduced", 300),
    "resnet50_512": ("resnet50", 512),
    "inceptionv3_512": ("inceptionv3", 512),
}


def load_golden(case: str) -> dict[str, np.ndarray]:
    """The case's arrays, and its input ``pixels`` (N, S, S, 3) uint8 from ``pixels_S.npz``."""
    with np.load(FIXTURE / f"{case}.npz", allow_pickle=False) as z:
        golden = {k: z[k] for k in z.files}
    with np.load(FIXTURE / f"pixels_{int(golden['data_shape'])}.npz", allow_pickle=False) as z:
        golden["pixels"] = z["pixels"]
    return golden


def draw_parameters(golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays MXNet saved (``aux:`` names for auxiliary states), drawn again as
    benchmarks/make_mxnet_network_golden.py draws them."""
    rng = np.random.default_rng(int(golden["seed"]))
    shapes = json.loads(str(golden["param_shapes"]))
    names, means, stds = golden["param_names"], golden["param_means"], golden["param_stds"]
    return {
        str(name): (mean + std * rng.standard_normal(tuple(shape))).astype(np.float32)
        for name, shape, mean, std in zip(names, shapes, means, stds, strict=True)
    }


def split(params: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(arg, aux)`` as ``read_mxnet_checkpoint_params`` gives them."""
    arg = {k: v for k, v in params.items() if not k.startswith("aux:")}
    return arg, {k.removeprefix("aux:"): v for k, v in params.items() if k.startswith("aux:")}


def save_checkpoint_params(path: Path, params: dict[str, np.ndarray]) -> None:
    """``mx.model.save_checkpoint``'s ``.params`` of float32 ``params`` (arg first, then aux, as drawn): MXNet
    1.9.1's NDArray list file, V2 records of dense CPU arrays, names ``arg:NAME`` / ``aux:NAME`` (the layout
    multibox.model.mxnet_params reads)."""
    with path.open("wb") as f:
        f.write(struct.pack("<QQQ", 0x112, 0, len(params)))
        for a in params.values():
            f.write(struct.pack(f"<Iii{a.ndim}q", 0xF993FAC9, 0, a.ndim, *a.shape))
            f.write(struct.pack("<iii", 1, 0, 0))  # cpu(0), float32
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        f.write(struct.pack("<Q", len(params)))
        for name in params:
            raw = (name if name.startswith("aux:") else f"arg:{name}").encode()
            f.write(struct.pack("<Q", len(raw)) + raw)


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory) -> dict:
    """One fixture case: its golden arrays, the regenerated parameters, their .params file, the pixels."""
    golden = load_golden(request.param)
    params = draw_parameters(golden)
    path = tmp_path_factory.mktemp("mxnet") / f"deploy_ssd_{request.param}-0000.params"
    save_checkpoint_params(path, params)
    network, data_shape = CASES[request.param]
    pixels = torch.from_numpy(golden["pixels"]).permute(0, 3, 1, 2).contiguous()  # (3, 3, S, S) uint8
    arg, aux = split(params)
    return {
        "golden": golden,
        "arg": arg,
        "aux": aux,
        "file": path,
        "pixels": pixels,
        "network": network,
        "size": data_shape,
    }


@pytest.fixture(scope="module")
def vgg() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The vgg16_reduced SSD300 case's golden and ``arg`` (for the mapping and error tests)."""
    golden = load_golden("vgg16_reduced_300")
    return golden, split(draw_parameters(golden))[0]


def tie_runs(scores: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of every run of two or more rows whose adjacent scores differ by less than TIE."""
    runs, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or abs(scores[i - 1] - scores[i]) >= TIE:
            if i - start > 1:
                runs.append((start, i))
            start = i
    return runs


def canonical(rows: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """``rows`` with each tie run sorted by class id, then rounded corners (a set, in a fixed order)."""
    out = rows.copy()
    for start, stop in runs:
        block = out[start:stop]
        keys = [np.round(block[:, c], 3) for c in (5, 4, 3, 2)] + [block[:, 0]]
        out[start:stop] = block[np.lexsort(keys)]
    return out


def assert_same_detections(ours: torch.Tensor, theirs: np.ndarray) -> dict[str, float]:
    """MultiBoxDetection's sorted rows (N, K, 6): the same class ids (kept and suppressed) row for row, scores
    and boxes within ATOL, tie runs compared as sets. Returns the measured maxima."""
    ours = ours[:, : theirs.shape[1]].numpy()
    worst = {"score": 0.0, "box": 0.0, "tie_runs": 0}
    for i, (mine, want) in enumerate(zip(ours, theirs, strict=True)):
        runs = tie_runs(want[:, 1])
        mine, want = canonical(mine, runs), canonical(want, runs)
        np.testing.assert_array_equal(mine[:, 0], want[:, 0], err_msg=f"class ids of image {i}")
        kept = want[:, 0] >= 0
        np.testing.assert_array_equal(mine[kept, 0], want[kept, 0])  # the kept rows in order
        np.testing.assert_allclose(mine[:, 1:], want[:, 1:], rtol=0, atol=ATOL, err_msg=f"image {i}")
        worst["score"] = max(worst["score"], float(np.abs(mine[:, 1] - want[:, 1]).max()))
        worst["box"] = max(worst["box"], float(np.abs(mine[:, 2:] - want[:, 2:]).max()))
        worst["tie_runs"] += len(runs)
    return worst


# --- parity with the original network ----------------------------------------------------------------------


def test_regenerated_file_is_byte_for_byte_what_mxnet_saved(case):
    data = case["file"].read_bytes()
    assert len(data) == int(case["golden"]["params_bytes"])
    assert hashlib.sha256(data).hexdigest() == str(case["golden"]["params_sha256"])


def test_checkpoint_of_the_params_file_computes_as_the_original(case, tmp_path):
    """params file -> mxnet_checkpoint -> saved -> load_checkpoint_model -> detect: the head outputs, anchors
    and MultiBoxDetection rows (deploy's settings, stored in the checkpoint, and evaluate's) of the original."""
    golden = case["golden"]
    state = mxnet_checkpoint(case["file"], case["network"], case["size"], VOC_CLASSES)
    model, class_names, network = load_checkpoint_model(atomic_save(state, tmp_path / "ssd.pt"))
    assert class_names == list(VOC_CLASSES) and network["name"] == multibox_network(case["network"])
    assert model.detection == MXNET_DEPLOY_DETECTION
    assert torch.allclose(model.anchors, torch.from_numpy(golden["anchors"]), rtol=0, atol=1e-6)
    outputs = []
    model.register_forward_hook(lambda module, args, out: outputs.append(out))
    worst = assert_same_detections(model.detect(case["pixels"]), golden["detection_deploy"])
    assert worst["score"] < ATOL and worst["box"] < ATOL

    (loc_preds, cls_preds), sample = outputs[0], torch.from_numpy(golden["sample_anchors"])
    np.testing.assert_allclose(
        loc_preds.view(3, -1, 4)[:, sample].numpy(), golden["sample_loc_preds"], rtol=0, atol=ATOL
    )
    np.testing.assert_allclose(cls_preds[:, :, sample].numpy(), golden["sample_cls_preds"], rtol=0, atol=ATOL)
    cls_prob = cls_preds.softmax(dim=1)
    np.testing.assert_allclose(cls_prob[:, :, sample].numpy(), golden["sample_cls_prob"], rtol=0, atol=1e-5)
    s = MXNET_EVALUATE_DETECTION
    evaluate = multibox_detection(
        cls_prob,
        loc_preds,
        model.anchors,
        clip=s.clip,
        threshold=s.threshold,
        nms_threshold=s.nms_threshold,
        force_suppress=s.force_suppress,
        variances=VARIANCES,
        nms_topk=s.nms_topk,
        per_class=s.per_class,
    )
    assert_same_detections(evaluate, golden["detection_evaluate"])


# --- the name mapping and its errors -----------------------------------------------------------------------


def test_every_name_maps_one_to_one(vgg):
    _, arg = vgg
    model = import_mxnet_params(arg, None, "vgg16_reduced", 20, 300)
    names = {mxnet_name(k): k for k in model.state_dict()}
    assert sorted(names) == sorted(arg)
    assert names["conv4_3_weight"] == "backbone.conv4_3.weight"
    assert names["fc6_bias"] == "backbone.fc6.bias"
    assert names["relu4_3_scale"] == "relu4_3_scale"
    assert names["multi_feat_2_conv_1x1_conv_weight"] == "multi_feat_2_conv_1x1.weight"
    assert (
        names["multi_feat_5_conv_3x3_relu_cls_pred_conv_bias"]
        == "multi_feat_5_conv_3x3_relu_cls_pred_conv.bias"
    )
    state = model.state_dict()
    for name, key in names.items():
        assert np.array_equal(state[key].numpy(), arg[name]), name


@pytest.mark.parametrize(
    ("case", "network", "key"),
    [("vgg16_reduced_300", "vgg16_reduced", "512"), ("resnet50_512", "resnet101", "resnet101")],
)
def test_presets_not_run_take_the_originals_names_and_shapes(case, network, key):
    """vgg16_reduced at 512 (7 prediction layers) and resnet101 at 512: every name and shape MXNet infers for
    those symbols (stored beside a run case) imports, and the anchors count as MXNet's."""
    golden = load_golden(case)
    params = json.loads(str(golden[f"params_{key}"]))
    arg, aux = split({name: np.broadcast_to(np.float32(0.5), tuple(shape)) for name, shape in params})
    model = import_mxnet_params(arg, aux, network, 20, 512)
    assert model.anchors.shape == (int(golden[f"anchors_{key}"]), 4)
    assert float(getattr(model, model.extra_names[-1] + "_conv_3x3").bias.detach()[0]) == 0.5


def import_error(arg, aux=None, num_classes: int = 20) -> str:
    with pytest.raises(DataError) as info:
        import_mxnet_params(arg, aux, "vgg16_reduced", num_classes, 300)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_missing_name_is_one_line(vgg):
    _, arg = vgg
    message = import_error({k: v for k, v in arg.items() if k != "fc7_bias"})
    assert "missing fc7_bias" in message


def test_an_unexpected_name_is_one_line(vgg):
    _, arg = vgg
    assert "unexpected fc8_weight" in import_error({**arg, "fc8_weight": np.zeros((20, 1024), np.float32)})
    assert "unexpected aux:bn_moving_mean" in import_error(arg, {"bn_moving_mean": np.zeros(3, np.float32)})


def test_a_wrong_shape_is_one_line(vgg):
    _, arg = vgg
    message = import_error({**arg, "relu4_3_scale": np.ones((1, 256, 1, 1), np.float32)})
    assert "wrong shape relu4_3_scale (1, 256, 1, 1) (expected (1, 512, 1, 1))" in message


def test_another_class_count_says_so(vgg):
    _, arg = vgg
    message = import_error(arg, num_classes=3)
    assert "20-class network" in message and "not 3 classes" in message


def test_only_the_presets_multibox_has_layer_for_layer(vgg):
    _, arg = vgg
    with pytest.raises(ConfigError, match="supported: vgg16_reduced, resnet50, resnet101, inceptionv3"):
        import_mxnet_params(arg, None, "mobilenet", 20, 512)


def test_fixed_gamma_batchnorm_ignores_its_scale_and_trains_the_rest():
    bn = FixedGammaBatchNorm2d(3, eps=2e-5)
    with torch.no_grad():
        bn.weight.fill_(7.0)
        bn.bias.fill_(0.5)
    x = torch.randn(4, 3, 5, 5)
    out = bn(x)  # train mode: batch statistics, running statistics updated
    expected = torch.nn.functional.batch_norm(x, None, None, None, bn.bias, True, 0.1, 2e-5)
    torch.testing.assert_close(out, expected)
    assert not torch.equal(bn.running_mean, torch.zeros(3))
    out.sum().backward()
    assert bn.weight.grad is None and not bn.weight.requires_grad and bn.bias.grad is not None
