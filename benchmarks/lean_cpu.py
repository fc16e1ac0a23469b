"""The step around the model on this CPU: fastai's optimizer against its fused twin, host reads a batch, whole steps.

    python benchmarks/lean_cpu.py --md     # about 8 minutes on 2 cores

1. The optimizer's step and zero_grad of torchvision's resnet18 and resnet50 (`vision_learner`, every group unfrozen,
   channels-last): aten ops (counted once) and ms (median of `--steps`, the optimizers in turns, each given the same
   gradients) for fastai's `Adam`, its twin without fused kernels (`fast_opt='exact'`), its fused twin (the default),
   and torch's `AdamW(fused=True)` through `OptimWrapper`.
2. Host reads a training batch with fastai's default callbacks and `accuracy`: fastai stock against ours, the progress
   bar redrawing as it does (every 0.2 s) and at every batch.
3. Whole training steps of timm's resnet50, 96px, batch 32, on the digits (`benchmark`: rounds in turns, median img/s
   with min and max): ours as it was (fastai's `Adam`, `fast_opt=False`), ours, fastai stock, NCHW float32.
4. The backward beside each optimizer (resnet50, 96px, batch 32, ours): minor page faults and ms a backward (medians),
   and the layout copies torch's fused AdamW makes inside its step: why it made a channels-last step no faster."""
import argparse, contextlib, io, resource, sys, time, warnings
from functools import partial
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import fastai, pandas as pd, timm, torch, torchvision
from torch import nn
from fastprogress.fastprogress import ProgressBar
from fastai.vision.all import *
from fastai.callback.channelslast import ChannelsLast as FastaiChannelsLast
from fastai.callback.fp16 import MixedPrecision as FastaiMixedPrecision
from channelslast.all import *

def _opts(params) -> dict:
    "Name -> an optimizer over `params` (fastai's parameter groups)"
    def fused(exact):
        o = Adam(params, lr=1e-3); fuse_optimizer(o, exact=exact); return o
    return {"fastai Adam": Adam(params, lr=1e-3), "twin, exact": fused(True), "fused twin (ours)": fused(False),
            "torch AdamW(fused)": OptimWrapper(params, opt=partial(torch.optim.AdamW, fused=True))}

def optimizer_table(arch, steps:int) -> pd.DataFrame:
    "aten ops and ms of each optimizer's step + zero_grad on `arch`, channels-last, all trainable"
    dls = DataLoaders.from_dsets([(torch.randn(3, 32, 32), 0)] * 4, [(torch.randn(3, 32, 32), 0)] * 4, bs=2, device='cpu')
    learn = vision_learner(dls, arch, pretrained=False, n_out=10, loss_func=nn.CrossEntropyLoss())
    model_to_channels_last(learn.model)
    params = learn.splitter(learn.model)
    learn.model(torch.randn(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)).sum().backward()  # gradients in autograd's layouts
    ps = [p for p in learn.model.parameters()]
    grads = [p.grad.clone() for p in ps]
    opts = _opts(params)
    def one(o, count=False):
        for p,g in zip(ps, grads): p.grad = g.clone()
        ops = AtenOps()
        t = time.perf_counter()
        if count:
            with ops: o.step(); o.zero_grad()
        else: o.step(); o.zero_grad()
        return time.perf_counter() - t,ops.n
    for o in opts.values(): one(o)  # the state made
    counts = {k: one(o, count=True)[1] for k,o in opts.items()}
    times = {k: [] for k in opts}
    for _ in range(steps):
        for k,o in opts.items(): times[k].append(one(o)[0] * 1e3)
    rows = [dict(model=arch.__name__, optimizer=k, **{'aten ops': counts[k], 'ms': pd.Series(v).median(), 'min': min(v), 'max': max(v)})
            for k,v in times.items()]
    df = pd.DataFrame(rows)
    df['ops vs fastai'] = df['aten ops'] / df['aten ops'].iloc[0]; df['vs fastai'] = df['ms'].iloc[0] / df['ms']
    return df

class _Window(Callback):
    "`reads.phase` = 'train' from the first callback of a training batch to its last"
    def __init__(self, reads, first): self.reads,self.first,self.order = reads,first,(-10**9 if first else 10**9)
    def before_batch(self):
        if self.first and self.training: self.reads.phase = 'train'
    def after_batch(self):
        if not self.first: self.reads.phase = None

def reads_table(epochs:int=3) -> pd.DataFrame:
    "Host reads a training batch, fastai stock and ours, the bar redrawing as usual and at every batch"
    rows = []
    for every in (ProgressBar.update_every, 0):
        for name,setup in (('fastai stock', lambda l: l.add_cb(FastaiChannelsLast())), ('ours', lambda l: l.to_channelslast())):
            learn = setup(Learner(digits_dls(size=32, bs=32), timm.create_model('resnet10t', num_classes=10), metrics=accuracy,
                                  loss_func=nn.CrossEntropyLoss()))
            reads,old = HostReads(phase=None),ProgressBar.update_every
            ProgressBar.update_every = every
            try:
                with reads, contextlib.redirect_stdout(io.StringIO()): learn.fit(epochs, 1e-3, cbs=[_Window(reads, True), _Window(reads, False)])
            finally: ProgressBar.update_every = old
            n = epochs * len(learn.dls.train)
            rows.append({'progress bar redraws': 'every 0.2 s' if every else 'every batch', 'config': name, 'training batches': n,
                         'host reads': reads.counts['train'], 'a batch': reads.counts['train'] / n, 'what': dict(reads.names)})
    return pd.DataFrame(rows)

def step_table(steps:int, repeats:int) -> pd.DataFrame:
    "img/s of whole training steps, configs in turns"
    configs = {"ours, fastai's Adam (as before)": lambda l: l.to_channelslast(fast_opt=False), 'ours': lambda l: l.to_channelslast(),
               'fastai stock': lambda l: l.add_cbs([FastaiChannelsLast(), FastaiMixedPrecision()]), 'NCHW fp32': lambda l: l}
    return benchmark(lambda: timm.create_model('resnet50', num_classes=10), digits_dls(size=96, bs=32), steps=steps, repeats=repeats,
                     configs=configs, validate=False)

class _Faults(Callback):
    "Minor page faults and seconds of each backward"
    order = 10**9
    def before_fit(self): self.rows = []
    def before_backward(self): self.f0,self.t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt,time.perf_counter()
    def after_backward(self): self.rows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.f0, time.perf_counter() - self.t0))

def faults_table(steps:int) -> pd.DataFrame:
    "Page faults and ms of a backward, and copies a step, with each optimizer (ours: `to_channelslast()`)"
    from torch.profiler import profile, ProfilerActivity
    from channelslast.check import _conversions
    configs = {"fastai's Adam": dict(fast_opt=False), 'fused twin (ours)': {},
               'torch AdamW(fused)': dict(opt_func=partial(OptimWrapper, opt=partial(torch.optim.AdamW, fused=True)))}
    rows = []
    for k,kw in configs.items():
        torch.manual_seed(0)
        opt_func = kw.pop('opt_func', Adam)
        learn = Learner(digits_dls(size=96, bs=32), timm.create_model('resnet50', num_classes=10), loss_func=nn.CrossEntropyLoss(),
                        opt_func=opt_func).to_channelslast(**kw)
        f = _Faults()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[f, ShortEpochCallback(pct=min(1, (steps + 3) / len(learn.dls.train)))])
        learn.model(to_channels_last(learn.dls.one_batch()[0])).float().sum().backward()  # gradients for one more step
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof: learn.opt.step()
        in_step = [r for r in _conversions(prof.events(), 'step')]
        fl,t = zip(*f.rows[3:])
        rows.append({'optimizer': k, 'page faults a backward': pd.Series(fl).median(), 'backward ms': pd.Series(t).median() * 1e3,
                     'layout copies in its step': len(in_step)})
    return pd.DataFrame(rows)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=15, help='timed optimizer steps; training steps a round')
    ap.add_argument('--repeats', type=int, default=5, help='rounds of training steps')
    ap.add_argument('--parts', default='optimizer,reads,steps,faults')
    ap.add_argument('--md', action='store_true')
    a = ap.parse_args()
    show = lambda df: print((df.to_markdown(index=False, floatfmt='.2f') if a.md else df.to_string(index=False)) + '\n')
    print(f"torch {torch.__version__}, fastai {fastai.__version__}; {cpu_description()}\n")
    parts = a.parts.split(',')
    if 'optimizer' in parts:
        for arch in (torchvision.models.resnet18, torchvision.models.resnet50): show(optimizer_table(arch, a.steps))
    if 'reads' in parts: show(reads_table())
    if 'steps' in parts:
        print(f"resnet50, 96px, batch 32, digits; {a.steps} steps a round, median of {a.repeats} rounds in turns:\n")
        show(step_table(min(a.steps, 10), a.repeats))
    if 'faults' in parts:
        print("resnet50, 96px, batch 32, ours (`to_channelslast()`), by optimizer; medians of the fit's backwards:\n")
        show(faults_table(a.steps))

if __name__ == '__main__': main()
