"What notebooks do poorly: fresh processes (import order, the benchmark script end to end)"
import subprocess, sys
from pathlib import Path

root = Path(__file__).parents[1]
def run(*args): return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, timeout=600)

def test_import_order():
    "`from channelslast.all import *` before or after fastai's gives our callbacks from `to_channelslast`"
    for first, second in (('fastai.vision.all', 'channelslast.all'), ('channelslast.all', 'fastai.vision.all')):
        res = run('-c', f"from {first} import *\nfrom {second} import *\nfrom fastai.test_utils import synth_learner\n"
                        "import channelslast.callback as c\nl = synth_learner().to_channelslast()\n"
                        "print(type(l.channels_last) is c.ChannelsLast, type(l.mixed_precision) is c.MixedPrecision)")
        assert res.returncode == 0 and res.stdout.split() == ['True', 'True'], res.stderr

def test_precision_methods_after_fastai_ones():
    "A learner given fastai's MixedPrecision (twice) before this library is imported: to_bf16() then leaves one, ours, in bf16"
    res = run('-W', 'ignore', '-c', "from fastai.test_utils import synth_learner\nfrom fastai.callback.fp16 import MixedPrecision as F\n"
              "l = synth_learner().to_fp16().to_bf16()\nimport channelslast.all as c\nl.to_bf16()\n"
              "mps = [cb for cb in l.cbs if isinstance(cb, F)]\nprint(len(mps), type(mps[0]) is c.MixedPrecision, mps[0].amp_mode.value)")
    assert res.returncode == 0 and res.stdout.split() == ['1', 'True', 'bf16'], res.stdout + res.stderr

def test_benchmark_script():
    "The benchmark runs end to end and reports every config with a positive time"
    res = run('benchmarks/train_cpu.py', '--model', 'resnet10t', '--size', '32', '--bs', '4', '--batches', '1', '--repeats', '1', '--md')
    assert res.returncode == 0, res.stderr
    rows = [l for l in res.stdout.splitlines() if l.startswith('|') and 'config' not in l and '---' not in l]
    assert len(rows) == 4, res.stdout
    assert all(float(r.split('|')[2]) > 0 for r in rows), res.stdout

def test_profile_script():
    "The step-breakdown benchmark runs end to end: both optimizers profiled, their phases adding up to the step"
    res = run('benchmarks/profile_cpu.py', '--model', 'resnet10t', '--size', '32', '--bs', '8', '--steps', '2', '--md')
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(f'{k}:' in res.stdout for k in ('fastai stock', 'ours', "ours, fastai's Adam", 'ours, torch AdamW(fused)')), res.stdout
    rows = [l for l in res.stdout.splitlines() if l.startswith('| step ')]  # each config's table, then all side by side
    steps = [float(l.split('|')[2]) for l in rows[:4]]
    assert len(rows) == 5 and all(s > 0 for s in steps), res.stdout
    assert all(abs(float(v) - s) < 0.06 for v,s in zip(rows[-1].split('|')[2:6], steps)), res.stdout
    assert "ours against fastai stock: step" in res.stdout and 'optimizer ops/step' in res.stdout, res.stdout

def test_mend_benchmark_script():
    "The mending benchmark runs end to end: the three configs measured and both ratios printed, positive"
    res = run('benchmarks/mend_cpu.py', '--models', 'tresnet_m', '--size', '32', '--bs', '2', '--steps', '1', '--repeats', '1', '--md')
    assert res.returncode == 0, res.stderr[-3000:]
    row = next(l for l in res.stdout.splitlines() if l.startswith('| tresnet_m'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert all(float(c) > 0 for c in cells[1:4] + cells[5:]), row
