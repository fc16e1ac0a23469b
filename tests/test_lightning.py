"""`channelslast.lightning.ChannelsLast` on two CPU processes (`strategy='ddp'`, gloo): a fit, then a run resumed
from its checkpoint (`ckpt_path=`), and beside them a fit with `compile=True`. The rest of the callback is tested in
nbs/02b_lightning.ipynb."""
import os, subprocess, sys, torch
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

here = Path(__file__).parent

def run(out, *args) -> str:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'CHANNELSLAST_CPU_BF16': '0'}
    res = subprocess.run([sys.executable, str(here/'lightning_train.py'), str(out), *args], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The output of both runs (both processes of each), and their folder"
    out = tmp_path_factory.mktemp('lightning')
    with ThreadPoolExecutor(2) as ex:  # independent: the compiled fit saves no checkpoint
        compiled = ex.submit(run, out, '--compile')
        fit = run(out); resumed = run(out, '--resume')
        return fit, resumed, out, compiled.result()

def same(r0, r1):
    "The processes' weights are identical (DDP averages the gradients); BatchNorm statistics are each process's own"
    ws = [k for k in r0['state'] if 'running_' not in k and 'num_batches' not in k]
    assert len(ws) == 10
    for k in ws: assert torch.equal(r0['state'][k], r1['state'][k]), k

def nchw(t): return t.ndim < 4 or t.stride() == torch.empty(t.shape).stride()

def test_ddp_fit(runs):
    "Both processes train under DDP in channels-last (weights, inputs), end identical, and DDP never warns about grad strides"
    fit,_,out,_ = runs
    r0,r1 = (torch.load(out/f'fit-{r}.pt') for r in (0, 1))
    for r in (r0, r1): assert r['ddp'] and r['params_cl'] and r['fused'] and r['step'] == 4 and r['seen'] and all(r['seen']), r
    same(r0, r1)
    assert 'Grad strides do not match' not in fit, fit[-3000:]
    assert 'ChannelsLast: Trainer(precision' not in fit  # checked (32-true on a CPU pretending no native bf16): right

def test_ddp_resume(runs):
    "Resumed from the NCHW checkpoint, the optimizer state is channels-last again before the first step, on both processes"
    _,resumed,out,_ = runs
    ck = torch.load(out/'last.ckpt', weights_only=False)
    assert all(nchw(v) for v in ck['state_dict'].values())
    assert all(nchw(v) for s in ck['optimizer_states'][0]['state'].values() for v in s.values() if torch.is_tensor(v))
    r0,r1 = (torch.load(out/f'resume-{r}.pt') for r in (0, 1))
    for r in (r0, r1): assert r['step'] == 8 and r['state_cl'] and all(r['state_cl']) and r['params_cl'] and all(r['seen']), r
    same(r0, r1)
    assert 'Grad strides do not match' not in resumed, resumed[-3000:]

def test_ddp_compiled(runs):
    "With `compile=True` each process compiles its module in place, inside DDP, and both train to the same weights as eager"
    *_,out,compiled = runs
    c0,c1,e0 = (torch.load(out/f'{n}.pt') for n in ('compile-0', 'compile-1', 'fit-0'))
    for r in (c0, c1): assert r['compiled'] and r['compiles'] >= 1 and r['ddp'] and r['step'] == 4 and r['params_cl'], r
    same(c0, c1)
    # but the first convolution's bias: BatchNorm subtracts it, so its gradient is rounding noise that AdamW scales to lr
    for k in c0['state']:
        if 'running_' not in k and 'num_batches' not in k and k != 'net.0.bias':
            torch.testing.assert_close(c0['state'][k], e0['state'][k], rtol=1e-4, atol=1e-6)
    assert 'Grad strides do not match' not in compiled, compiled[-3000:]
