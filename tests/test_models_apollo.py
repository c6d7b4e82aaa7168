"""Super-resolution backends: soxr resampling, and Apollo on stand-in modules written here."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from curation.models import BackendSpecError, make_superres
from curation.models.apollo import ApolloSuperResolver, chunk_starts, crossfade_windows
from mixing.audio import resample

torch = pytest.importorskip("torch")

STAND_IN = textwrap.dedent('''
    """Stand-ins for Apollo: same call convention, (batch, 1, samples) in and out."""
    import torch
    from torch import nn

    CALLS = []


    class Identity(nn.Module):
        def __init__(self, sr=44100, win=20, feature_dim=256, layer=6):
            super().__init__()
            self.sr = sr
            self.scale = nn.Parameter(torch.ones(()))   # loaded from the checkpoint

        def forward(self, x):
            CALLS.append(tuple(x.shape))
            assert x.dim() == 3 and x.shape[1] == 1, x.shape
            return x * self.scale


    class Shifted(Identity):
        """Adds a constant: overlap-add must still be seamless."""
        def forward(self, x):
            return x * self.scale + 0.25


    class Ramp(Identity):
        """Output depends on the whole window and on the position in it: any change of window
        placement, padding or weighting changes the result."""
        def forward(self, x):
            CALLS.append(tuple(x.shape))
            ramp = torch.linspace(0, 1, x.shape[-1], dtype=x.dtype)
            return x * self.scale + x.mean(dim=-1, keepdim=True) + ramp


    class Shorter(Identity):
        """Drops the last 7 samples, as an STFT round trip may."""
        def forward(self, x):
            return (x * self.scale)[..., :-7]
''')


@pytest.fixture
def apollo_code(tmp_path):
    pkg = tmp_path / "ApolloCode" / "fakeapollo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(STAND_IN)
    yield tmp_path / "ApolloCode"
    import sys
    for name in [m for m in sys.modules if m.startswith("fakeapollo")]:
        del sys.modules[name]
    code = str((tmp_path / "ApolloCode").resolve())
    while code in sys.path:
        sys.path.remove(code)


def _checkpoint(path, scale=1.0, prefix="", envelope=True):
    state = {f"{prefix}scale": torch.tensor(scale)}
    torch.save({"model_name": "Identity", "state_dict": state} if envelope else state, path)
    return path


def _signal(n, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def test_resample_backend_length_and_values():
    sr_res = make_superres("resample")
    assert sr_res.model_id.startswith("soxr-hq")
    for n, sr in [(16000, 16000), (12345, 22050), (44100, 44100), (7, 8000)]:
        y = _signal(n, sr)
        out = sr_res.process(y, sr)
        assert out.dtype == np.float32
        assert len(out) == math.ceil(n * 44100 / sr)
        np.testing.assert_allclose(out, resample(y, sr, 44100), atol=1e-6)
    stereo = np.stack([_signal(800, 8000), _signal(800, 8000, 1)], axis=1)
    assert make_superres("resample").process(stereo, 8000).shape == (4410,)


def test_chunk_plan_crossfades_sum_to_one():
    for n in [1, 5, 10, 11, 17, 19, 20, 28, 1000]:
        starts = chunk_starts(n, 10, 8)
        assert starts[0] == 0 and starts[-1] + 10 >= n
        norm = np.zeros(n)
        for s, w in zip(starts, crossfade_windows(starts, 10, 2, n)):
            norm[s:s + len(w)] += w
        np.testing.assert_allclose(norm, 1.0)


def test_apollo_identity_equals_resampled_input(apollo_code, tmp_path):
    ckpt = _checkpoint(tmp_path / "apollo.ckpt")
    spec = (f"apollo:code={apollo_code},checkpoint={ckpt},class=fakeapollo.models:Identity,"
            "windowing=crossfade,chunk=1.0,overlap=0.25,batch_size=2,device=cpu")
    sres = make_superres(spec)
    assert isinstance(sres, ApolloSuperResolver) and sres._loaded is None
    y = _signal(53_000, 16000)  # 3.3 s -> several 1 s windows at 44.1 kHz
    out = sres.process(y, 16000)
    expected = resample(y, 16000, 44100)
    assert out.dtype == np.float32 and len(out) == math.ceil(53_000 * 44100 / 16000)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    from fakeapollo.models import CALLS
    assert CALLS and all(c[1:] == (1, 44100) for c in CALLS) and max(c[0] for c in CALLS) == 2
    assert sum(c[0] for c in CALLS) == len(chunk_starts(len(out), 44100, 44100 - 11025))
    # a clip shorter than one window goes through whole, unpadded
    CALLS.clear()
    short = sres.process(_signal(8000, 16000), 16000)
    assert CALLS == [(1, 1, 22050)] and len(short) == 22050


def test_apollo_seams_with_gain_and_offset(apollo_code, tmp_path):
    ckpt = _checkpoint(tmp_path / "apollo.ckpt", scale=0.5, prefix="audio_model.")
    y = _signal(100_000, 44100)
    sres = ApolloSuperResolver(ApolloSuperResolver.Settings(str(apollo_code), str(ckpt), chunk=0.5, overlap=0.1,
                                                            device="cpu", windowing="crossfade",
                                                            class_name="fakeapollo.models:Shifted"))
    out = sres.process(y, 44100)
    np.testing.assert_allclose(out, 0.5 * y + 0.25, atol=1e-6)  # no step at any seam
    # a model that shortens its output is aligned back to the window
    sres = ApolloSuperResolver(ApolloSuperResolver.Settings(str(apollo_code), str(ckpt), chunk=0.5, overlap=0.1,
                                                            device="cpu", windowing="crossfade",
                                                            class_name="fakeapollo.models:Shorter"))
    assert len(sres.process(y, 44100)) == len(y)


def test_apollo_config_yaml_names_class_and_args(apollo_code, tmp_path):
    ckpt = _checkpoint(tmp_path / "bare.pt", scale=2.0, envelope=False)
    cfg = tmp_path / "config_apollo.yaml"
    cfg.write_text("model:\n  _target_: fakeapollo.models.Identity\n  sr: 44100\n  win: 20\n"
                   "  feature_dim: 8\n  layer: 1\ntrainer:\n  max_epochs: 1\n")
    sres = make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},config={cfg},device=cpu")
    y = _signal(4410, 44100)
    np.testing.assert_allclose(sres.process(y, 44100), 2.0 * y, atol=1e-6)
    assert sres.model.sr == 44100
    assert sres.provenance["class"] == "fakeapollo.models.Identity"


def test_apollo_errors(apollo_code, tmp_path):
    ckpt = _checkpoint(tmp_path / "apollo.ckpt")
    y = _signal(441, 44100)
    with pytest.raises(BackendSpecError, match="overlap"):
        make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},chunk=1,overlap=0.8")
    with pytest.raises(BackendSpecError, match="unknown option"):
        make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},colour=red")
    with pytest.raises(FileNotFoundError, match="code folder"):
        make_superres(f"apollo:code={tmp_path / 'nope'},checkpoint={ckpt}").process(y, 44100)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        make_superres(f"apollo:code={apollo_code},checkpoint={tmp_path / 'x.ckpt'},"
                      "class=fakeapollo.models:Identity,device=cpu").process(y, 44100)
    with pytest.raises(ImportError, match="no 'Nope'"):
        make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},"
                      "class=fakeapollo.models:Nope,device=cpu").process(y, 44100)
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"other": torch.zeros(2)}}, wrong)
    with pytest.raises(RuntimeError, match="does not fit"):
        make_superres(f"apollo:code={apollo_code},checkpoint={wrong},"
                      "class=fakeapollo.models:Identity,device=cpu").process(y, 44100)
    # a checkpoint holding arbitrary pickled objects is refused unless unsafe_load=true
    odd = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"scale": torch.tensor(1.0)}, "hparams": _Opaque()}, odd)
    base = f"apollo:code={apollo_code},checkpoint={odd},class=fakeapollo.models:Identity,device=cpu"
    with pytest.raises(RuntimeError, match="unsafe_load=true"):
        make_superres(base).process(y, 44100)
    np.testing.assert_allclose(make_superres(base + ",unsafe_load=true").process(y, 44100), y,
                               atol=1e-6)
    assert len(make_superres(base + ",unsafe_load=true").process(np.zeros(0, np.float32), 16000)) == 0


class _Opaque:
    pass


def reference_apollo_windowing(model, y: np.ndarray) -> np.ndarray:
    """06_superres_apollo.py's chunking and overlap-add, restated with torch (44.1 kHz input)."""
    F = torch.nn.functional
    x = torch.from_numpy(y)[None]
    C, fade = 10 * 44100, 3 * 44100
    step = C // 2
    border = C - step
    n = x.shape[1]
    padded = n > 2 * border and border > 0
    if padded:
        x = F.pad(x, (border, border), mode="reflect")
    chunks, where = [], []
    i = 0
    while i < x.shape[1]:
        part = x[:, i:i + C]
        length = part.shape[-1]
        if length < C:
            part = F.pad(part, (0, C - length), mode="reflect") if length > C // 2 + 1 else \
                F.pad(part, (0, C - length), mode="constant", value=0)
        chunks.append(part)
        where.append((i, length))
        i += step
    with torch.no_grad():
        outs = model(torch.stack(chunks)).squeeze(1)
    base = torch.ones(C)
    base[-fade:] = 0
    total = torch.zeros(x.shape[1])
    count = torch.zeros(x.shape[1])
    for k, (out, (i, length)) in enumerate(zip(outs, where)):
        w = base.clone()
        if k == 0:
            w[:fade] = 1
        elif i + C >= x.shape[1]:
            w[-fade:] = 1
        total[i:i + length] += out[:length] * w[:length]
        count[i:i + length] += w[:length]
    result = torch.nan_to_num(total / count, nan=0.0).numpy()
    return result[border:-border] if padded else result


@pytest.mark.parametrize("seconds", [3.0, 5.2, 8.0, 10.0, 12.3, 25.0])
def test_apollo_default_windowing_is_the_reference(apollo_code, tmp_path, seconds):
    ckpt = _checkpoint(tmp_path / "apollo.ckpt", scale=0.5)
    sres = make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},class=fakeapollo.models:Ramp,"
                         "batch_size=3,device=cpu")
    assert sres.provenance["windowing"] == "reference" and sres.provenance["tail_s"] == 3.0
    y = _signal(int(seconds * 44100), 44100, seed=int(seconds))
    out = sres.process(y, 44100)
    expected = reference_apollo_windowing(sres.model, y)
    assert out.shape == y.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=2e-5)
    from fakeapollo.models import CALLS
    assert all(c[1:] == (1, 441000) for c in CALLS)  # the model always sees full 10 s windows
    # the crossfade option gives something else with this window-dependent model
    other = make_superres(f"apollo:code={apollo_code},checkpoint={ckpt},class=fakeapollo.models:Ramp,"
                          "windowing=crossfade,device=cpu").process(y, 44100)
    assert other.shape == y.shape and not np.allclose(other, expected, atol=1e-3)
