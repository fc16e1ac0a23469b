"""Correctness on one device: the behaviours a GPU run must confirm, each a function that raises when it fails.

`benchmarks/gpu_report.py` runs every check in `CHECKS` on the device it reports on (CUDA on a lent GPU, the CPU
in `--quick` runs and in CI) and records pass/fail with the error. The checks state the rule for the device they run
on: the CPU guard, for instance, must run its layer in NCHW on a CPU and stay off on CUDA. `run_notebook` runs a
notebook's cells as `nbdev-test` does, its `#| cuda` cells included on a CUDA device, with no Jupyter kernel (the
GPU machine has none)."""
import codeop, copy, json, os, sys, tempfile, types, warnings
from pathlib import Path
import torch
from torch import nn
from fastai.data.core import Datasets
from fastai.data.transforms import ItemGetter
from fastai.learner import Learner, load_learner
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision as FastaiMixedPrecision
from channelslast.all import *

def tiny_dls(device, size:int=16, bs:int=8, n:int=32, n_classes:int=2, ndim:int=4):
    "Random images (or volumes, `ndim=5`) and labels on `device`"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, *([4] if ndim == 5 else []), size, size, generator=g)
    items = list(zip(x, torch.randint(0, n_classes, (n,), generator=g)))
    # `Datasets`, not plain lists: `Learner.export` needs `new_empty`
    dsets = Datasets(items, [[ItemGetter(0)], [ItemGetter(1)]], splits=[list(range(bs, n)), list(range(bs))])
    return dsets.dataloaders(bs=bs, device=device, num_workers=0)

def tiny_learner(device, model=None, path=None, **kwargs) -> Learner:
    "timm's resnet10t (2 classes) on `tiny_dls`, on `device`"
    import timm
    torch.manual_seed(0)
    model = model if model is not None else timm.create_model('resnet10t', num_classes=2)
    return Learner(kwargs.pop('dls', None) or tiny_dls(device), model.to(device), loss_func=nn.CrossEntropyLoss(),
                   path=path or tempfile.mkdtemp(), **kwargs)

def seen_at(learn, f, conv=None) -> set:
    "(is channels-last, dtype) of every input reaching `conv` (default: the 6th conv, deep in resnet10t) while `f(learn)` runs"
    if conv is None: convs = [m for m in learn.model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]; conv = convs[min(5, len(convs)-1)]
    seen = set()
    h = conv.register_forward_pre_hook(lambda m, i: seen.add((is_channels_last(i[0]), i[0].dtype)))
    try: f(learn)
    finally: h.remove()
    return seen

fit = lambda l: l.fit(1, 1e-3)
def _tol(dev) -> float: return 1e-5 if dev.type == 'cpu' else 2e-3  # cuDNN may pick other (TF32, fp16) algorithms per run
def _expect(got, want, what): assert got == want, f"{what}: got {got}, expected {want}"

def check_fp16_scaler(dev):
    "fp16 with a GradScaler: fp16 convs in channels-last, the scale learnt, saved with the optimizer and restored"
    learn = tiny_learner(dev).to_channelslast(amp_mode='fp16', init_scale=2.**10, growth_interval=1)
    _expect(seen_at(learn, fit), {(True, torch.float16)}, 'last conv input')
    assert learn.scaler.is_enabled(), 'GradScaler not enabled for fp16'
    scale = learn.scaler.get_scale()
    assert scale != 2.**10, f'the scale never moved from init_scale ({scale})'
    file = learn.save('fp16')
    assert 'grad_scaler' in torch.load(file, weights_only=False)['opt'], 'no GradScaler state in the checkpoint'
    learn2 = tiny_learner(dev, path=learn.path).to_channelslast(amp_mode='fp16', init_scale=2.**10, growth_interval=1).load('fp16')
    learn2.get_preds()
    _expect(learn2.scaler.get_scale(), scale, 'scale after load')

def check_bf16(dev):
    "bf16 autocast in channels-last, no GradScaler; on a GPU without bf16, a clear error instead"
    if dev.type == 'cuda' and not torch.cuda.is_bf16_supported():
        try: tiny_learner(dev).to_channelslast(amp_mode='bf16').fit(1)
        except ValueError as e: assert 'bf16' in str(e); return
        raise AssertionError('bf16 on a GPU without it raised no ValueError')
    learn = tiny_learner(dev).to_channelslast(amp_mode='bf16')
    _expect(seen_at(learn, fit), {(True, torch.bfloat16)}, 'last conv input')
    assert not learn.scaler.is_enabled(), 'GradScaler enabled for bf16'
    assert all(torch.isfinite(torch.tensor(l)) for l in learn.recorder.losses), learn.recorder.losses

def _fixed(dev) -> dict:
    "`to_channelslast`'s arguments for the device's fast precision, named on a CPU (where with none the workload chooses)"
    if dev.type != 'cpu': return {}
    return dict(amp_mode='bf16') if default_amp_mode('cpu') else dict(use_amp=False)

def check_default_precision(dev):
    "`to_channelslast()` picks the device's fast precision: fp16 in channels-last on CUDA; on a CPU the workload's choice, then kept"
    learn = tiny_learner(dev).to_channelslast()
    learn.fit(4, 1e-3)  # a CPU's trial, where the rule asks for one, is over by then
    if dev.type == 'cpu':
        c = learn.channelslast_choice()
        assert c is not None and c['config'] in ('CL bf16', 'CL fp32', 'NCHW fp32'), c
        want = (c['config'].startswith('CL'), torch.bfloat16 if 'bf16' in c['config'] else torch.float32)
    else: want = (True, {AMPMode.FP16: torch.float16, AMPMode.BF16: torch.bfloat16}[default_amp_mode(dev.type)])
    _expect(seen_at(learn, fit), {want}, 'last conv input')

class Vol(nn.Module):
    "A tiny 3D classifier"
    def __init__(self): super().__init__(); self.c3,self.head = nn.Conv3d(3, 4, 3, padding=1),nn.Linear(4, 2)
    def forward(self, x): return self.head(self.c3(x).relu().flatten(2).mean(-1))

def check_conv3d(dev):
    "A Conv3d model trains in channels_last_3d, inputs included"
    learn = tiny_learner(dev, Vol(), dls=tiny_dls(dev, size=8, ndim=5)).to_channelslast(**_fixed(dev))
    got = seen_at(learn, fit, learn.model.c3)
    assert {cl for cl,_ in got} == {True}, f'Conv3d input not channels_last_3d: {got}'
    assert is_channels_last(learn.model.c3.weight), 'Conv3d weight not channels_last_3d'

def check_precision_methods(dev):
    "fastai's to_fp16/to_bf16/to_fp32, made device-aware: the dtype they promise reaches the convs on this device"
    learn = tiny_learner(dev)
    _expect(seen_at(learn.to_fp16(), fit), {(False, torch.float16)}, 'to_fp16')
    if dev.type != 'cuda' or torch.cuda.is_bf16_supported():
        _expect(seen_at(learn.to_bf16(), fit), {(False, torch.bfloat16)}, 'to_bf16')
    _expect(seen_at(learn.to_fp32(), fit), {(False, torch.float32)}, 'to_fp32')
    assert learn.scaler is None and sum(isinstance(c, FastaiMixedPrecision) for c in learn.cbs) == 0

def check_save_load_export(dev):
    "Checkpoints and exports hold NCHW weights; loading them gives the same predictions"
    learn = tiny_learner(dev).to_channelslast(**_fixed(dev))
    learn.fit(1, 1e-3)
    preds = learn.get_preds()[0]
    sd = torch.load(learn.save('ckpt'), weights_only=False)
    assert all(v.is_contiguous() for v in sd['model'].values()), 'checkpoint weights not NCHW'
    assert model_is_channels_last(learn.model), 'saving changed the learner'
    learn2 = tiny_learner(dev, path=learn.path).to_channelslast(**_fixed(dev)).load('ckpt')
    assert torch.allclose(learn2.get_preds()[0], preds, atol=_tol(dev)), 'predictions after load differ'
    learn.export('cl.pkl')
    kept = load_learner(learn.path/'cl.pkl', cpu=dev.type == 'cpu')
    assert all(p.is_contiguous() for p in kept.model.parameters()), 'exported weights not NCHW'
    kept.dls = learn.dls
    if dev.type == 'cpu': kept.to_channelslast(**_fixed(dev))  # fastai's `load_learner(cpu=True)` leaves float32 NCHW
    assert torch.allclose(kept.get_preds()[0].to(preds.device), preds, atol=_tol(dev)), 'predictions of the export differ'

def check_inference(dev):
    "get_preds in channels-last before any fit, agreeing with NCHW float32"
    ref = tiny_learner(dev).get_preds()[0]
    learn = tiny_learner(dev).to_channelslast(use_amp=False)
    got = seen_at(learn, lambda l: l.get_preds())
    _expect(got, {(True, torch.float32)}, 'last conv input')
    d = float((learn.get_preds()[0] - ref).abs().max())
    assert d < (1e-4 if dev.type == 'cpu' else 5e-3), f'max |dp| {d} against NCHW'  # TF32 convolutions on CUDA

class GuardNet(nn.Module):
    "A RepVGG-like stem: a 1x1 stride-2 conv on 3 channels, the layer oneDNN #6035 crashes on in channels-last"
    def __init__(self):
        super().__init__()
        self.stem,self.conv,self.head = nn.Conv2d(3, 8, 1, stride=2),nn.Conv2d(8, 8, 3, padding=1),nn.Linear(8, 2)
    def forward(self, x): return self.head(self.conv(self.stem(x)).mean((2, 3)))

def check_guard(dev):
    "The CPU guard runs its layer in NCHW on a CPU, with a warning, and stays off on CUDA"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn = tiny_learner(dev, GuardNet()).to_channelslast(use_amp=False)
        learn.fit(1, 1e-3)  # the guard's hooks go on in `before_fit`: the hook of `seen_at` must come after them
        got = seen_at(learn, fit, learn.model.stem)
    on_cpu = dev.type == 'cpu'
    _expect(got, {(not on_cpu, torch.float32)}, 'guarded stem input (channels-last?)')
    warned = any('oneDNN' in str(o.message) for o in w)
    _expect(warned, on_cpu, 'guard warning given')
    _expect(seen_at(learn, fit, learn.model.conv), {(True, torch.float32)}, 'next conv input')

class RaiseAt(Callback):
    "Raise at the `at`-th training `after_pred`, while autocast is on"
    order = 20
    def __init__(self, at=2): self.at,self.n = at,0
    def after_pred(self):
        if not self.training: return
        self.n += 1
        if self.n == self.at: raise RuntimeError('boom')

def check_fault(dev):
    "A fault mid-fit leaves no autocast on and a learner that trains on, its fp16 scaler included"
    amp = 'fp16' if dev.type == 'cuda' else 'bf16'
    learn = tiny_learner(dev).to_channelslast(amp_mode=amp)
    try: learn.fit(1, 1e-3, cbs=RaiseAt(2))
    except RuntimeError as e: assert 'boom' in str(e), e
    else: raise AssertionError('the fault did not reach the caller')
    assert not torch.is_autocast_enabled(dev.type), 'autocast left on after the fault'
    learn.fit(1, 1e-3)
    assert len(learn.recorder.losses) == 3, learn.recorder.losses
    assert model_is_channels_last(learn.model)

def check_auto(dev):
    "ChannelsLast(auto=True) with amp_mode='auto' times each configuration on this device and keeps one"
    learn = tiny_learner(dev, cbs=[ChannelsLast(auto=True, trial_steps=2), MixedPrecision('auto')])
    n = 2 * len(trial_precisions(dev.type))  # each format in each precision the trial times
    learn.fit(n + 1, 1e-3)  # 3 batches an epoch; the trial takes n + 2n steps
    cb = learn.channels_last
    assert cb.decision is not None and len(cb.trial_times) == n, cb.trial_times
    assert all(t > 0 for ts in cb.trial_times.values() for t in ts), cb.trial_times
    _expect(model_is_channels_last(learn.model), cb.decision[0] == 'channels_last', 'model format matches the decision')

def check_device_mends(dev):
    "Each mend for a device's kernels (`mend='all'`) against the native layer on this device: same values, channels-last kept"
    from unittest import mock
    from timm.layers import GroupNorm, BlurPool2d
    layers = {'GroupNorm': (nn.GroupNorm(8, 64), 64, False), 'timm GroupNorm': (GroupNorm(64, 8), 64, False),
              'InstanceNorm2d': (nn.InstanceNorm2d(64, affine=True), 64, False), 'ReflectionPad2d': (nn.ReflectionPad2d(2), 16, True),
              'ReplicationPad2d': (nn.ReplicationPad2d((1, 2, 0, 3)), 16, True), 'BlurPool2d': (BlurPool2d(16), 16, True),
              'PixelShuffle': (nn.PixelShuffle(2), 64, True), 'PixelUnshuffle': (nn.PixelUnshuffle(2), 16, True)}
    # off CUDA, stand in for a device whose kernels lose the format (as the mend notebook's tests do)
    here = {op: d if dev.type in d else (*d, dev.type) for op,d in lost_on.items()}
    torch.manual_seed(0)
    with mock.patch.dict(lost_on, here):
        for name,(m,c,exact) in layers.items():
            for p in m.parameters(): nn.init.normal_(p)
            m = m.to(dev); mm = copy.deepcopy(m); mend_model(mm, unmeasured=True)
            x = torch.randn(4, c, 24, 24, device=dev).contiguous(memory_format=torch.channels_last)
            outs = []
            for mod in (m, mm):
                xi = x.clone().requires_grad_()
                y = mod(xi); y.backward(torch.ones_like(y).contiguous(memory_format=torch.channels_last))
                outs.append((y, xi.grad))
            (y0,g0),(y1,g1) = outs
            _expect(is_channels_last(y1) and is_channels_last(g1), True, f'{name}: mended output and input gradient channels-last')
            err = max(float((a - b).detach().abs().max() / b.detach().abs().max().clamp(min=1)) for a,b in ((y1, y0), (g1, g0)))
            assert (err == 0) if exact else (err < 1e-4), f"{name}: mended differs from native by {err:.2e} (relative)"
            with torch.autocast(dev.type, dtype=torch.float16 if dev.type == 'cuda' else torch.bfloat16):
                _expect(mm(x).dtype, m(x).dtype, f'{name}: dtype under autocast')

CHECKS = [check_default_precision, check_device_mends, check_fp16_scaler, check_bf16, check_conv3d, check_precision_methods,
          check_save_load_export, check_inference, check_guard, check_fault, check_auto]

def _flags(src:str) -> list:
    "The `#|` directives at the top of a cell's source"
    out = []
    for l in src.splitlines():
        if not l.startswith('#|'): break
        out.append(l[2:].strip())
    return out

def _nbdev_stub():
    "`nbdev.showdoc.show_doc` and `nbdev.nbdev_export` as no-ops, where nbdev isn't installed (the GPU machine)"
    try: import nbdev.showdoc; return
    except ImportError: pass
    nb = types.ModuleType('nbdev'); sd = types.ModuleType('nbdev.showdoc')
    sd.show_doc = nb.nbdev_export = lambda *a, **k: None
    nb.showdoc = sd
    sys.modules.update({'nbdev': nb, 'nbdev.showdoc': sd})

def run_notebook(fn:Path, cuda:bool) -> int:
    "Run `fn`'s code cells up to its last `#| cuda` cell as nbdev-test does (`cuda` cells only if `cuda`); the count of cuda cells run"
    cells = [''.join(c['source']) for c in json.loads(Path(fn).read_text())['cells'] if c['cell_type'] == 'code']
    last = max(i for i,s in enumerate(cells) if 'cuda' in _flags(s))
    _nbdev_stub()
    os.environ['IN_TEST'] = '1'
    ns,ran,cwd = {'__name__': '__main__'},0,os.getcwd()
    cc = codeop.Compile()  # keeps a cell's `from __future__ import annotations` for the cells after it, as IPython does
    os.chdir(Path(fn).parent)  # notebooks run from their folder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for i,src in enumerate(cells[:last+1]):
                fl = _flags(src)
                if any(f.replace(' ', '') == 'eval:false' for f in fl) or ('slow' in fl) or ('cuda' in fl and not cuda): continue
                try: exec(cc(src, f'{Path(fn).name} cell {i}', 'exec'), ns)
                except Exception as e: raise AssertionError(f'{Path(fn).name}, code cell {i}: {type(e).__name__}: {e}') from e
                ran += 'cuda' in fl
    finally: os.chdir(cwd)
    return ran

def cuda_notebooks(nbs:Path) -> list:
    "The notebooks in `nbs` that have `#| cuda` cells"
    return [p for p in sorted(Path(nbs).glob('*.ipynb'))
            if any(c['cell_type'] == 'code' and 'cuda' in _flags(''.join(c['source'])) for c in json.loads(p.read_text())['cells'])]
