"""The CPU guard for oneDNN #6035 (see `needs_cpu_guard`): models with a 1x1 stride-2 conv on few channels train in
channels-last without crashing. Each training runs in a process of its own: unguarded, the crash is a signal."""
import json, math, os, subprocess, sys
import pytest, torch
from torch import nn
from channelslast.all import *

here = os.path.dirname(__file__)

def train(case, tmp_path, env=None):
    out = tmp_path/f'{case}.json'
    res = subprocess.run([sys.executable, os.path.join(here, 'guard_train.py'), case, str(out)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '2', **(env or {})})
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stderr[-3000:]}"
    return json.loads(out.read_text())

@pytest.mark.parametrize('case,bf16', [('default', '1'), ('default', '0'), ('auto', None), ('fp32', None)])
def test_stem_trains_an_epoch(case, bf16, tmp_path):
    "A Conv2d(3, 32, 1, stride=2) stem at 96px: to_channelslast() (either kind of CPU), amp_mode='auto', and float32"
    r = train(case, tmp_path, {'CHANNELSLAST_CPU_BF16': bf16} if bf16 else None)
    assert r['steps'] == 16 and all(math.isfinite(l) for l in r['losses'])
    assert r['guarded'] == '0'
    # hooks on while channels-last: at the end unless `auto` decided for NCHW, which takes them off with the format
    assert r['guarded_layers'] == ([] if r['decision'].startswith("('contiguous'") else ['0']), r
    assert r['seen']['0'] == ['nchw'], r['seen']  # the stem always ran in NCHW
    # the next conv in channels-last (the `auto` trial also times steps in NCHW)
    assert r['seen']['3'] == (['channels_last', 'nchw'] if case == 'auto' else ['channels_last']), r['seen']
    if case == 'default': assert r['dtype'] == ('torch.bfloat16' if bf16 == '1' else None), r  # no native bf16: float32, no MixedPrecision
    if case == 'auto': assert r['decision'] != 'None'  # the trial ran its course on the guarded model

def test_repvgg_a2_trains(tmp_path):
    "timm's repvgg_a2 (its stem's 1x1 stride-2 branch aborted the process unguarded) at batch 8, 96px"
    r = train('repvgg', tmp_path)
    assert r['steps'] == 4 and all(math.isfinite(l) for l in r['losses'])
    assert r['guarded_layers'] == ['stem.conv_1x1.conv'], r['guarded_layers']
    assert r['seen'][r['guarded']] == ['nchw'] and r['seen'][r['after']] == ['channels_last'], r

def _grads(cl:bool):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 64, 1, stride=2), nn.ReLU(), nn.Conv2d(64, 8, 3, padding=1))
    x = torch.randn(2, 3, 96, 96)
    if cl: m,x = model_to_channels_last(m),to_channels_last(x)
    m(x).square().mean().backward()
    return [p.grad for p in m.parameters()]

def test_guarded_weight_gradient_equals_nchw(tmp_path):
    "Under the guard, the stem's weight gradient is the NCHW one (to float rounding), and so are the others"
    code = ("import torch, sys; sys.path.insert(0, %r); from test_guard import _grads\n"
            "torch.save((_grads(False), _grads(True)), sys.argv[1])") % here
    out = str(tmp_path/'grads.pt')
    res = subprocess.run([sys.executable, '-W', 'ignore', '-c', code, out], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stderr[-3000:]}"
    nchw,cl = torch.load(out)
    for a,b in zip(nchw, cl): torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)

def test_guarded_model_pickles():
    "The guard's hooks are functions of the library: a guarded model pickles (torch.save of a whole model, fastai export)"
    import pickle
    m = model_to_channels_last(nn.Sequential(nn.Conv2d(3, 8, 1, stride=2)))
    assert guarded_layers(pickle.loads(pickle.dumps(m))) == ['0']
