"""How long the first fit of a new workload waits for the CPU rule: `to_channelslast()` with nothing remembered (the
rule reads the model, and times the candidates where it isn't sure) against the same fit once the choice is
remembered, side by side in one process.

    python benchmarks/first_fit.py [--models resnet18,resnet50,mobilenetv3_large_100] [--size 32] [--bs 32] [--repeats 3]

Each round, for each model: a fit of one epoch (`--batches` training batches) with the cache cleared, then a fit of a
new learner that finds the choice remembered; the wait is the difference. Prints medians (min-max) over rounds."""
import argparse, os, statistics, sys, tempfile, time, warnings
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import torch, timm
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.callback.progress import ProgressCallback
from channelslast.all import *

def fit_seconds(model_name:str, dls) -> tuple:
    "Seconds of one epoch of `to_channelslast()` training, and the choice it made"
    learn = Learner(dls, timm.create_model(model_name, num_classes=10), loss_func=CrossEntropyLossFlat(), cbs=[]).to_channelslast()
    learn.remove_cb(ProgressCallback)
    with learn.no_logging():
        t = time.perf_counter(); learn.fit(1, 1e-3); s = time.perf_counter() - t
    return s, learn.channelslast_choice()

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models', default='resnet18,resnet50,mobilenetv3_large_100'); ap.add_argument('--size', type=int, default=32)
    ap.add_argument('--bs', type=int, default=32); ap.add_argument('--batches', type=int, default=30); ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    os.environ['CHANNELSLAST_CACHE'] = str(Path(tempfile.mkdtemp())/'choices.json')
    dls = synthetic_dls(size=a.size, bs=a.bs, n=a.bs * a.batches)
    print(f"{cpu_description()}; torch {torch.__version__}; {a.size}px, batch {a.bs}, an epoch of {a.batches} batches")
    waits,choices,reads = {m: [] for m in a.models.split(',')},{},{}
    for r in range(a.repeats):
        for m in waits:
            clear_choices()
            model = timm.create_model(m, num_classes=10)
            t = time.perf_counter(); workload(conv_table(model, (3, a.size, a.size)), a.bs); reads.setdefault(m, []).append(time.perf_counter() - t)
            first,choices[m] = fit_seconds(m, dls)
            again,c = fit_seconds(m, dls)
            assert c['source'] == 'remembered', c
            waits[m].append(first - again)
    for m,ws in waits.items():
        c = choices[m]
        print(f"{m}: {c['config']} by {c['source']} ({len(c.get('candidates', [c['config']]))} candidates); first fit waits "
              f"{statistics.median(ws):.2f} s ({min(ws):.2f}-{max(ws):.2f}), of which reading the model {statistics.median(reads[m]):.2f} s")

if __name__ == '__main__': main()
