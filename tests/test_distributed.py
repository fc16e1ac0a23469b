"""Two CPU processes (gloo) under fastai's distrib_ctx with to_channelslast(), against the same global batches on one.
The runs are independent: they start together (each mostly waits on imports, compiling or the other rank)."""
import os, socket, subprocess, sys, torch
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

here = Path(__file__).parent

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def train(out, *args, ranks=2):
    "Run ddp_train.py under torchrun with `ranks` processes (or alone with `--single`), writing its results in `out`"
    # float32 unless `--bf16`: pretend a CPU without native bf16, whatever this one is, so the default is float32
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'CHANNELSLAST_CPU_BF16': '0'}
    run = ([] if '--single' in args else
           ['-m', 'torch.distributed.run', '--nproc_per_node', str(ranks), '--master_addr', '127.0.0.1', '--master_port', str(free_port())])
    res = subprocess.run([sys.executable, *run, str(here/'ddp_train.py'), str(out), *args], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Every run's folder, once all have finished: float32, bf16 and compiled on two ranks, and float32 on one process"
    out = tmp_path_factory.mktemp('ddp')
    with ThreadPoolExecutor(4) as ex: list(ex.map(lambda a: train(out, *a), [(), ('--bf16',), ('--compile',), ('--single',)]))
    return out

def test_ddp_matches_single_process(runs):
    "In float32, two ranks end identical, and equal to one process on the same global batches"
    r0,r1,one = (torch.load(runs/f'{n}.pt') for n in ('0', '1', 'single'))
    assert r0['steps'] == r1['steps'] == one['steps'] == 6
    assert r0['ddp'] and r1['ddp'] and not one['ddp']  # the 2 ranks really trained under DDP
    for r in (r0, r1): assert (r['n_cl'], r['n_mp'], r['cl'], r['dtype']) == (1, 1, True, 'None'), r  # float32, chosen
    for r in (r0, r1): assert r['choice']['config'] == 'CL fp32' and 'distributed' in r['choice']['reason'], r['choice']
    assert (one['n_cl'], one['n_mp'], one['cl'], one['choice']) == (1, 0, True, None), one  # float32 named: nothing chosen
    for k in r0['state']:
        assert torch.equal(r0['state'][k], r1['state'][k]), k  # identical on both ranks
        torch.testing.assert_close(r0['state'][k], one['state'][k], rtol=1e-4, atol=1e-5)  # same as one process
    torch.manual_seed(0); init = torch.nn.Conv2d(3, 8, 3, padding=1)  # ddp_train.model()'s first layer, untrained
    assert not torch.allclose(r0['state']['0.weight'], init.weight.detach(), atol=1e-3), 'the weights moved'

def test_ddp_bf16_ranks_identical(runs):
    "With bf16 forced, rounding differs from one process, but the ranks stay bit-identical and the loss finite"
    r0,r1 = (torch.load(runs/f'{n}-bf16.pt') for n in ('0', '1'))
    for r in (r0, r1): assert (r['n_cl'], r['n_mp'], r['cl'], r['dtype'], r['steps']) == (1, 1, True, 'torch.bfloat16', 6), r
    for k in r0['state']: assert torch.equal(r0['state'][k], r1['state'][k]), k
    assert torch.isfinite(r0['losses']).all() and torch.isfinite(r1['losses']).all()
    assert not torch.equal(r0['losses'][0], r0['losses'][-1])  # it trained

def test_ddp_compiled_ranks_identical(runs):
    "With compile=True each rank compiles its model in place, inside DDP: both end with the same weights, as one process"
    r0,r1,one = (torch.load(runs/f'{n}.pt') for n in ('0-compile', '1-compile', 'single'))
    for r in (r0, r1): assert (r['compiled'], r['ddp'], r['steps'], r['cl']) == (True, True, 6, True) and r['compiles'] >= 2, r
    for k in r0['state']:
        assert torch.equal(r0['state'][k], r1['state'][k]), k
        torch.testing.assert_close(r0['state'][k], one['state'][k], rtol=1e-3, atol=1e-4)  # compiled kernels round differently
