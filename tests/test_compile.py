"""`to_channelslast(compile=True)` through every fastai workflow, and a machine without a C++ compiler. Each runs in a
subprocess (compiling can take the interpreter down); both start at once, since each mostly waits on a compiler."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

here = Path(__file__).parent

# No C++ compiler: inductor's CPU backend fails at the first call of the first graph. Caches off, or a graph compiled
# by another test could be found there without compiling anything
NO_CXX = """
import warnings, torch
from torch import nn
from fastai.vision.all import *
from channelslast.all import *
from channelslast.test_utils import colour_dls
dls = colour_dls('{out}', bs=8)
def learner(**kw):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    return Learner(dls, m, loss_func=CrossEntropyLossFlat()).to_channelslast(use_amp=False, **kw)
def fit(l):
    dls.rng.seed(0); torch.manual_seed(0)
    with l.no_bar(), l.no_logging(): l.fit(2)
    return torch.stack(l.recorder.losses)
eager,learn = learner(),learner(compile=True)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always'); losses = fit(learn)
msgs = [str(o.message) for o in w if 'ChannelsLast(compile)' in str(o.message)]
assert len(msgs) == 1, msgs
print(msgs[0])
assert 'failed (InductorError: InvalidCxxCompiler: No working C++ compiler' in msgs[0] and 'goes on eager in channels-last' in msgs[0], msgs[0]
assert not learn.channels_last.compiler.compiled(learn.model) and model_is_channels_last(learn.model)
torch.testing.assert_close(losses, fit(eager))  # every batch trained, eager, as without compile
print('ok')
"""

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Both subprocesses, started together"
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    wf,nc = tmp_path_factory.mktemp('workflow'),tmp_path_factory.mktemp('nocxx')
    p = lambda args, **kw: subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    procs = {'workflow': (p([str(here/'compile_workflow.py'), str(wf)], env=env), wf),
             'nocxx': (p(['-c', NO_CXX.format(out=nc)], env={**env, 'CXX': '/nonexistent/c++', 'TORCHINDUCTOR_FORCE_DISABLE_CACHES': '1'}), nc)}
    yield procs
    for pr,_ in procs.values(): pr.kill()

def finished(runs, name):
    pr,out = runs[name]
    stdout,stderr = pr.communicate(timeout=900)
    assert pr.returncode == 0, stdout[-3000:] + stderr[-5000:]
    return out,stdout

def test_workflows_compile_a_fixed_number_of_graphs(runs):
    "3 epochs (then 2 and 3 compile nothing), get_preds, predict, tta, fine_tune: a few graphs, the same losses as eager"
    out,_ = finished(runs, 'workflow')
    r = json.loads((out/'workflow.json').read_text())
    epochs = r['fit 3 epochs (per epoch)']
    assert epochs[0] >= 2 and epochs[1:] == [0, 0], epochs  # training and validation graphs in epoch 1, none after
    assert r['get_preds'] == 0 and r['predict again'] == 0, r  # validation's graphs serve get_preds; one graph for a batch of 1
    assert r['predict'] <= 1 and r['tta'] == 0, r
    assert r['fine_tune(1, freeze_epochs=1)'] <= 4 and r['fit 1 more'] == 0, r  # frozen body: its own graphs, once
    assert sum(v for k,v in r.items() if k in ('get_preds', 'predict', 'tta', 'fine_tune(1, freeze_epochs=1)')) + sum(epochs) <= 8
    assert r['recompile limit hit'] == [], r  # four compiled learners in one process: each its own limit
    eager,compiled = r['losses']
    assert len(eager) == len(compiled) == 4
    for a,b in zip(eager, compiled): assert abs(a - b) <= 1e-3 * abs(a) + 1e-4, (eager, compiled)
    assert r['compiled'] and r['class'] == 'Sequential' and r['keys'] == ['0.0.weight', '0.0.bias']  # in place: the user's module
    rep = r['report']
    assert {e['phase'] for e in rep} >= {'training', 'validation', 'inference'}, rep
    assert rep[0]['reason'] == 'first compile' and any('size mismatch' in (e['reason'] or '') for e in rep), rep  # the last, smaller batch
    assert all(e['seconds'] > 0 for e in rep if e['graph'] == 'forward'), rep

def test_save_load_export_and_serving(runs):
    "Checkpoints load into a compiled learner; a deployed one serves frozen, its own weights, and unfreezes to train"
    out,_ = finished(runs, 'workflow')
    r = json.loads((out/'workflow.json').read_text())
    assert r['load: same preds'], r
    s = r['served']  # in the CPU's fast precision (bf16 here), against the same eager
    assert s['variant'] == 'frozen' and s['graphs'] >= 1 and s['same_top1'] and s['max_diff'] < 0.05, s
    assert r['second served: own preds'] and r['frozen then load: new weights'], r
    assert r['served then fit'] == ['train', {}] and r['to_contiguous'], r  # trained (and validated) unfrozen
    assert r['served default'] == 'train', r  # not frozen unless asked (see `freezing_faster_on`)

def test_no_cxx_compiler_trains_eager(runs):
    "Without a C++ compiler: one warning naming the cause, then every batch trains eager, in channels-last"
    _,stdout = finished(runs, 'nocxx')
    assert stdout.strip().endswith('ok'), stdout
