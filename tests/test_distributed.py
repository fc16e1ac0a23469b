"Two CPU processes (gloo) under fastai's distrib_ctx with to_channelslast(), against the same global batches on one"
import os, socket, subprocess, sys, torch
from pathlib import Path

here = Path(__file__).parent

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_ddp_matches_single_process(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
           '--master_port', str(free_port()), str(here/'ddp_train.py'), str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    res = subprocess.run([sys.executable, str(here/'ddp_train.py'), str(tmp_path), '--single'], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    r0,r1,one = (torch.load(tmp_path/f'{n}.pt') for n in ('0', '1', 'single'))
    assert r0['steps'] == r1['steps'] == one['steps'] == 6
    assert r0['ddp'] and r1['ddp'] and not one['ddp']  # the 2 ranks really trained under DDP
    for r in (r0, r1, one): assert (r['n_cl'], r['n_mp'], r['cl']) == (1, 1, True)
    for k in r0['state']:
        assert torch.equal(r0['state'][k], r1['state'][k]), k  # identical on both ranks
        torch.testing.assert_close(r0['state'][k], one['state'][k], rtol=1e-4, atol=1e-5)  # same as one process
    torch.manual_seed(0); init = torch.nn.Conv2d(3, 8, 3, padding=1)  # ddp_train.model()'s first layer, untrained
    assert not torch.allclose(r0['state']['0.weight'], init.weight.detach(), atol=1e-3), 'the weights moved'
