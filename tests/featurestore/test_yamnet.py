"""YAMNet: a fake official yamnet.h5 (Keras 2 weights layout, random weights) converted and checked against
an independent numpy forward pass straight from the Keras-layout arrays, and the front end against a direct
numpy computation of tf.signal.stft + linear_to_mel_weight_matrix."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from featurestore import yamnet as Y

# layer1: Conv2D; layer2..14: depthwise + pointwise (tensorflow/models research/audioset/yamnet/yamnet.py)
DEFS = [(3, 2, 32), (3, 1, 64), (3, 2, 128), (3, 1, 128), (3, 2, 256), (3, 1, 256), (3, 2, 512), (3, 1, 512),
        (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 2, 1024), (3, 1, 1024)]


def keras_weights(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """{Keras layer name: {weight name: array in Keras layout}}, random, of the official model's shapes."""
    rng = np.random.default_rng(seed)

    def bn(c):
        return {"beta": rng.normal(0, 0.1, c), "moving_mean": rng.normal(0, 0.1, c),
                "moving_variance": rng.uniform(0.5, 1.5, c)}

    layers, cin = {}, 1
    for i, (k, _, cout) in enumerate(DEFS, start=1):
        if i == 1:
            layers["layer1/conv"] = {"kernel": rng.normal(0, 1 / 3, (k, k, cin, cout))}
            layers["layer1/conv/bn"] = bn(cout)
        else:
            layers[f"layer{i}/depthwise_conv"] = {"depthwise_kernel": rng.normal(0, 1 / 3, (k, k, cin, 1))}
            layers[f"layer{i}/depthwise_conv/bn"] = bn(cin)
            layers[f"layer{i}/pointwise_conv"] = {"kernel": rng.normal(0, cin ** -0.5, (1, 1, cin, cout))}
            layers[f"layer{i}/pointwise_conv/bn"] = bn(cout)
        cin = cout
    layers["dense"] = {"kernel": rng.normal(0, 0.03, (1024, 521)), "bias": rng.normal(0, 0.1, 521)}
    return {name: {w: a.astype(np.float32) for w, a in ws.items()} for name, ws in layers.items()}


def write_h5(path: Path, layers: dict[str, dict[str, np.ndarray]], under_model_weights: bool = False,
             split_names: bool = False) -> Path:
    """Keras 2 HDF5 weights: attr layer_names; per layer a group with attr weight_names ('layer1/conv/kernel:0')
    and a dataset per weight at <layer>/<weight name> (so 'layer1/conv/layer1/conv/kernel:0'). Keras splits an
    attribute past 64 KB into layer_names0, layer_names1, ... (`split_names`)."""
    order = {"kernel": 0, "depthwise_kernel": 0, "bias": 1, "beta": 0, "moving_mean": 1, "moving_variance": 2}
    weightless = ["input_1", "reshape", "layer1/relu", "global_average_pooling2d", "activation"]
    names = weightless[:2] + list(layers) + weightless[2:]
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if under_model_weights else f
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4-tf"
        encoded = np.array([n.encode() for n in names])
        if split_names:
            root.attrs["layer_names0"], root.attrs["layer_names1"] = encoded[:10], encoded[10:]
        else:
            root.attrs["layer_names"] = encoded
        for name in names:
            group = root.require_group(name)
            weights = sorted(layers.get(name, {}).items(), key=lambda kv: order[kv[0]])
            group.attrs["weight_names"] = np.array([f"{name}/{w}:0".encode() for w, _ in weights], dtype="S")
            for w, array in weights:
                group.create_dataset(f"{name}/{w}:0", data=array)
    return path


# ---- independent numpy reference --------------------------------------------------------------------

def tf_same(size, k, s):
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def np_conv(x, kernel, stride, depthwise=False):
    """x (H, W, Cin) NHWC like Keras; kernel HWIO (depthwise: H, W, C, 1); TF 'same' padding."""
    kh, kw = kernel.shape[:2]
    (t, b), (lft, r) = tf_same(x.shape[0], kh, stride), tf_same(x.shape[1], kw, stride)
    xp = np.pad(x, ((t, b), (lft, r), (0, 0)))
    oh, ow = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    out = 0
    for i in range(kh):
        for j in range(kw):
            window = xp[i:i + stride * oh:stride, j:j + stride * ow:stride, :]
            out = out + (window * kernel[i, j, :, 0] if depthwise else window @ kernel[i, j])
    return out


def np_bn_relu(x, w):
    return np.maximum((x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + 1e-4) + w["beta"], 0)


def np_yamnet(patch, layers):
    x = patch[:, :, None].astype(np.float64)
    for i, (_, stride, _) in enumerate(DEFS, start=1):
        if i == 1:
            x = np_bn_relu(np_conv(x, layers["layer1/conv"]["kernel"], stride), layers["layer1/conv/bn"])
        else:
            x = np_conv(x, layers[f"layer{i}/depthwise_conv"]["depthwise_kernel"], stride, depthwise=True)
            x = np_bn_relu(x, layers[f"layer{i}/depthwise_conv/bn"])
            x = np_conv(x, layers[f"layer{i}/pointwise_conv"]["kernel"], 1)
            x = np_bn_relu(x, layers[f"layer{i}/pointwise_conv/bn"])
    return x.mean(axis=(0, 1))


def np_log_mel(wave):
    """tf.signal.stft (periodic Hann 400, hop 160, fft 512, no end pad) -> |.| -> TF's HTK mel -> log(+0.001)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    n = 1 + (len(wave) - 400) // 160
    spec = np.abs(np.stack([np.fft.rfft(wave[i * 160:i * 160 + 400] * window, 512) for i in range(n)]))
    mel = lambda hz: 1127.0 * np.log(1 + hz / 700.0)  # noqa: E731
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((257, 64))
    for band in range(64):
        lo, mid, hi = edges[band:band + 3]
        for k in range(1, 257):  # the DC bin stays zero
            m = mel(k * 8000.0 / 256)
            weights[k, band] = max(0.0, min((m - lo) / (mid - lo), (hi - m) / (hi - mid)))
    return np.log(spec @ weights + 0.001)


def tone(seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    layers = keras_weights()
    base = tmp_path_factory.mktemp("yamnet")
    out = Y.convert_keras_h5(write_h5(base / "yamnet.h5", layers), base / "yamnet.pt")
    return layers, Y.load_yamnet(out), out


# ---- tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,kernel,stride,expected", [
    (96, 3, 2, (0, 1)), (64, 3, 2, (0, 1)), (3, 3, 2, (1, 1)), (5, 3, 2, (1, 1)), (2, 3, 2, (0, 1)),
    (7, 3, 1, (1, 1)), (8, 3, 1, (1, 1)), (6, 1, 1, (0, 0)), (4, 2, 2, (0, 0)), (5, 2, 2, (0, 1))])
def test_same_padding_matches_tf_arithmetic(size, kernel, stride, expected):
    assert Y.same_padding(size, kernel, stride) == expected
    before, after = expected
    assert (size + before + after - kernel) // stride + 1 == -(-size // stride)  # TF's output size


def test_pad_waveform_reference_lengths():
    # features.pad_waveform: >= 15,600 samples, then whole 7,680-sample hops
    assert [len(Y.pad_waveform(np.zeros(n, np.float32))) for n in (1, 8000, 15600, 15601, 16000, 48000)] == \
        [15600, 15600, 15600, 23280, 23280, 54000]
    assert [len(Y.wave_patches(np.zeros(n, np.float32))) for n in (8000, 16000, 48000)] == [1, 2, 6]


def test_front_end_matches_numpy_reference():
    wave = Y.pad_waveform(tone(1.3))
    ours = Y.log_mel(wave).numpy()
    ref = np_log_mel(wave.astype(np.float64))
    assert ours.shape == ref.shape == (1 + (len(wave) - 400) // 160, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    p = Y.patches(torch.from_numpy(ref))
    assert p.shape == (1 + (ref.shape[0] - 96) // 48, 96, 64)
    np.testing.assert_array_equal(p[1].numpy(), ref[48:144])
    assert Y.mel_matrix()[0].sum() == 0 and Y.mel_matrix().shape == (257, 64)


def test_first_conv_layer_tf_same_padding(converted):
    layers, model, _ = converted
    patch = Y.wave_patches(tone(1.0))[0]
    ours = model.layers[0](patch[None, None]).detach()[0].permute(1, 2, 0).numpy()  # -> HWC
    x = patch.numpy()[:, :, None].astype(np.float64)
    ref = np_bn_relu(np_conv(x, layers["layer1/conv"]["kernel"], 2), layers["layer1/conv/bn"])
    assert ours.shape == ref.shape == (48, 32, 32)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_network_matches_numpy_forward_from_keras_arrays(converted):
    layers, model, _ = converted
    wave = tone(0.5, seed=3)  # one patch: the numpy forward takes seconds per patch
    pats = Y.wave_patches(wave)
    ref = np.stack([np_yamnet(p, layers) for p in pats.numpy()])
    with torch.inference_mode():
        ours = model(pats).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(Y.yamnet_embed(model, [wave])[0], ref.mean(0), rtol=1e-3, atol=1e-4)
    logits = model.logits(pats).detach().numpy()
    np.testing.assert_allclose(logits, ref @ layers["dense"]["kernel"] + layers["dense"]["bias"], rtol=1e-3, atol=1e-3)


def test_embed_shapes_and_independence(converted):
    _, model, _ = converted
    waves = [tone(1.0), tone(0.5, 1), tone(3.0, 2)]
    out = Y.yamnet_embed(model, waves)
    assert out.shape == (3, 1024) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(Y.yamnet_embed(model, waves[1:2])[0], out[1], rtol=1e-5, atol=1e-6)
    assert Y.yamnet_embed(model, []).shape == (0, 1024)


def test_converter_reads_model_weights_group_and_keeps_exact_values(converted, tmp_path):
    layers, _, first = converted
    h5 = write_h5(tmp_path / "full.h5", layers, under_model_weights=True, split_names=True)
    out = Y.convert_keras_h5(h5, tmp_path / "b.pt")
    a, b = torch.load(first, weights_only=True), torch.load(out, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["layers.0.conv.weight"][5, 0, 2, 1].item() == layers["layer1/conv"]["kernel"][2, 1, 0, 5]  # OIHW <- HWIO
    dw = layers["layer4/depthwise_conv"]["depthwise_kernel"]
    assert a["layers.3.depthwise.conv.weight"][17, 0, 0, 2].item() == dw[0, 2, 17, 0]
    bn = layers["layer14/pointwise_conv/bn"]
    assert a["layers.13.pointwise.bn.running_var"][9].item() == bn["moving_variance"][9]
    assert a["layers.13.pointwise.bn.bias"][9].item() == bn["beta"][9]
    assert torch.equal(a["layers.13.pointwise.bn.weight"], torch.ones(1024))  # scale=False: no gamma
    assert a["classifier.weight"][3, 7].item() == layers["dense"]["kernel"][7, 3]


def test_unknown_and_missing_layers_are_named(tmp_path):
    layers = keras_weights()
    extra = dict(layers, **{"layer15/conv": {"kernel": np.zeros((3, 3, 1, 1), np.float32)}})
    with pytest.raises(ValueError, match="unknown layer 'layer15/conv'"):
        Y.convert_keras_h5(write_h5(tmp_path / "extra.h5", extra), tmp_path / "x.pt")
    short = {k: v for k, v in layers.items() if k != "layer7/pointwise_conv/bn"}
    with pytest.raises(ValueError, match="missing layer 'layer7/pointwise_conv/bn'"):
        Y.convert_keras_h5(write_h5(tmp_path / "short.h5", short), tmp_path / "y.pt")
    no_beta = dict(layers, **{"layer2/depthwise_conv/bn": {"moving_mean": np.zeros(32, np.float32),
                                                            "moving_variance": np.ones(32, np.float32)}})
    with pytest.raises(ValueError, match="layer2/depthwise_conv/bn: weights"):
        Y.convert_keras_h5(write_h5(tmp_path / "nobeta.h5", no_beta), tmp_path / "z.pt")
    assert not (tmp_path / "x.pt").exists()


def test_missing_files_say_where_and_how(tmp_path, converted):
    with pytest.raises(FileNotFoundError, match=r"no weights at .*nothere\.pt.*convert-yamnet yamnet\.h5"):
        Y.load_yamnet(tmp_path / "nothere.pt")
    with pytest.raises(FileNotFoundError, match="official yamnet.h5"):
        Y.convert_keras_h5(tmp_path / "nothere.h5", tmp_path / "x.pt")
    h5 = write_h5(tmp_path / "yamnet.h5", keras_weights())
    with pytest.raises(ValueError, match="is the Keras file"):
        Y.load_yamnet(h5)
    state = torch.load(converted[2], weights_only=True)
    del state["classifier.bias"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"missing \['classifier.bias'\]"):
        Y.load_yamnet(tmp_path / "broken.pt")
