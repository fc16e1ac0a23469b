"""GPU report: one command turns a lent CUDA GPU into figures and CUDA test results.

    python benchmarks/gpu_report.py --out DIR            # on one CUDA GPU: at most 8 minutes (--budget)
    python benchmarks/gpu_report.py --quick --out DIR    # anywhere, a CPU too: tiny models and sizes (CI runs it)

Writes DIR/gpu_report.md and DIR/gpu_report.json, rewritten after every step, with these sections (the same headings
with `--quick`): Environment, CUDA correctness, Mends, Training throughput, Inference throughput, Utilisation, Auto,
Step breakdown, Epochs, Thrash.
Each step runs guarded: a failure is recorded with its error and the report goes on; a step that would start past the
time budget is recorded as skipped. Steps run in order of worth: correctness, the mends for CUDA's kernels
(`benchmarks/mend_device.py`: whether each is faster, so on by default), resnet50, the step breakdown (resnet18 and
resnet50: fastai stock, ours with the fused twin of fastai's Adam, with fastai's Adam and with torch's fused AdamW:
where a step's time goes, aten ops, host reads and host syncs counted), fastai epochs of resnet18 and resnet50 at batch
64 and 256 from host memory (fastai stock against ours: what the host costs), the thrash survey, then the other models. Throughput: data made once on the device (no input pipeline in the figures), warm-up rounds untimed
(kernel selection, compilation, the `auto` trial), configs interleaved round by round, median img/s with min and max.
Weights are random (untrained): `top1 agree` compares near-ties, a worst case.

Plan of the device calls (15 minutes of device time in all, machine start included):
1. Here: `bash ../shared/tools/gpu-wheels.sh` writes .whl/ (fastai and its pure-Python needs, about 2 MB; torch,
   torchvision, timm, pandas, matplotlib, scikit-learn and psutil are on the device machine already).
2. One `run`, carry [".whl"], timeout_s 560, nothing else in it:
       python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl && export PYTHONPATH=$PWD/.site:$PWD \
       PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_report.py --out $OUT --budget 420
   then `give_back`. Copy $OUT's gpu_report.md and .json to benchmarks/gpu/ as <gpu>-<n>.md/.json.
Measured on an H100 (2026-11-26, torch 2.11, two calls): machine start and transfers about 30 s, install and imports
15 s, environment and the bf16 matmul 6 s; correctness 160 s with cuDNN's autotuner on throughout (the notebook 105 s
of it), less now that only timed steps autotune; resnet50 training in 7 configs with compilation 112 s, its inference
5 s; convnext_tiny 45 + 5 s; efficientnet_b0 over 67 s. The thrash survey took 2-30 s a model with the autotuner on
(efficientnet_b0 135 s); with it off it should take a few seconds a model. A budget of 420 s ends the report inside
8 minutes; what it can't hold is listed as skipped, and `--parts`/`--models` rerun just that in a second call.
What is still open (2026-11-26): the mends (5 cases, estimated 25 s each at 224px: not yet run on a GPU), and the thrash
survey and throughput the first runs did not reach: `--parts mends,thrash,others --models efficientnet_b0,regnety_032,resnet50_gn`.
Layout against compile (2026-12-01): resnet50 and convnext_tiny train and predict in NCHW AMP compiled (inductor's own
layouts) and `to_channelslast(compile=True)` beside the eager configs, so one run settles whether `compile=True` should
still convert to channels-last on a GPU (`--parts resnet50,others --models convnext_tiny`).
Step breakdown (2026-12-01) and epochs (2026-12-07): the next run's one call, everything still open (`breakdown` est.
120 s, `epochs` 180 s; the correctness notebooks now include `optim`'s and `lean`'s CUDA cells: the twins against
fastai's optimizers on CUDA, and a batch copied without a host sync):
`--parts correctness,breakdown,epochs,mends,thrash,others --models convnext_tiny,efficientnet_b0,regnety_032,resnet50_gn`.
"""
import argparse, contextlib, gc, io, json, math, platform, signal, sys, time, traceback, warnings
from pathlib import Path
import torch, pandas as pd
root = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(root), str(Path(__file__).parent)]
warnings.filterwarnings('ignore')  # slow-precision and deprecation warnings: the report says what it measured
from fastai.data.load import DataLoader
from fastai.data.core import DataLoaders
from fastai.callback.channelslast import ChannelsLast as FastaiChannelsLast
from fastai.callback.fp16 import MixedPrecision as FastaiMixedPrecision
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.metrics import accuracy
from torch import nn
from channelslast.all import *
import device_checks, mend_device

SECTIONS = ['Environment', 'CUDA correctness', 'Mends', 'Training throughput', 'Inference throughput', 'Utilisation', 'Auto',
            'Step breakdown', 'Epochs', 'Thrash']
# the survey page's models (and resnetblur50), first those whose layers CUDA kernels are said to treat otherwise
# (GroupNorm; BlurPool's reflect pad)
SURVEY = ['resnet50_gn', 'regnety_008_tv', 'tresnet_m', 'resnetblur50', 'resnet18', 'resnet50', 'resnet26t', 'resnext50_32x4d', 'regnetx_002', 'regnety_032', 'efficientnet_b0',
          'efficientnetv2_rw_t', 'mobilenetv3_large_100', 'mobilenetv2_100', 'convnext_atto', 'convnext_tiny', 'nfnet_l0',
          'dm_nfnet_f0', 'densenet121', 'inception_v3', 'seresnext26d_32x4d',
          'ecaresnet26t', 'res2net50_26w_4s', 'resnest14d', 'dla34', 'cspdarknet53', 'rexnet_100', 'repvgg_a2',
          'vit_tiny_patch16_224', 'deit_tiny_patch16_224', 'swin_tiny_patch4_window7_224']
PARTS = ['correctness', 'mends', 'resnet50', 'breakdown', 'epochs', 'thrash', 'others']  # the environment always comes first
# the step breakdown's models, sizes and batches: what fastai users train, where the host's share may be large
BREAKDOWN = [('resnet18', 224, 64), ('resnet50', 224, 64), ('resnet50', 224, 256)]
EPOCHS = [('resnet18', 224, 64), ('resnet18', 224, 256), ('resnet50', 224, 64), ('resnet50', 224, 256)]  # what the host costs a fastai epoch
OTHERS = ['convnext_tiny', 'efficientnet_b0', 'regnety_032', 'resnet50_gn']  # at batch 128
TRANSFORMERS = ('vit_', 'deit_', 'swin_')  # run at the 224px their position embeddings are built for
# dense bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s (the first name found in the device name wins)
DATASHEET_BF16 = {'H200': 989, 'H100 NVL': 835, 'H100 PCIe': 756, 'H100': 989, 'GH200': 989, 'B200': 2250, 'A100': 312,
                  'L40S': 362, 'L4': 121, 'A10': 125, 'RTX 4090': 165, 'RTX 3090': 71}
ANCHORS = ["PyTorch's channels-last tutorial: ResNet-50 +22% from channels-last (V100)",
           "timm, RTX 3090, AMP training NHWC/NCHW: resnet50 1.47x (826 -> 1218 img/s), regnety_032 0.71x, nfnet_f0 0.42x",
           "NVIDIA DeepLearningExamples ResNet-50, one A100 80GB: 2,470 img/s AMP (NHWC), 938 img/s TF32",
           "MLPerf Training v3.0 ResNet-50, DGX H100: about 7,000 img/s per GPU (MXNet, DALI; about 17.5% of the H100 SXM's 989 TFLOP/s)",
           "Goals for resnet50 on an H100: ours at least 1.3x NCHW AMP and at least 3,000 img/s in eager mode"]

class DeviceBatches(DataLoader):
    "A fastai `DataLoader` over tensors already on their device, handed out in slices: no collation, no copies"
    def __init__(self, x, y, bs): super().__init__(bs=bs, n=len(x), device=x.device); self.x,self.y = x,y
    def create_batches(self, samps):
        n = len(list(samps))
        for i in range(0, n, self.bs): yield self.x[i:i+self.bs], self.y[i:i+self.bs]

def device_dls(size:int, bs:int, steps:int, device, n_classes:int=10) -> DataLoaders:
    "`steps` random training batches and `steps` validation batches, made once on `device`"
    g = torch.Generator(device=device).manual_seed(0)
    mk = lambda: DeviceBatches(torch.randn(steps*bs, 3, size, size, device=device, generator=g),
                               torch.randint(0, n_classes, (steps*bs,), device=device, generator=g), bs)
    return DataLoaders(mk(), mk(), device=device)

class Report:
    "Sections of Markdown and JSON, each step run guarded and timed against one budget, written out after every step"
    def __init__(self, out:Path, budget:float):
        self.out,self.budget,self.t0 = out,budget,time.time()
        self.md = {s: [] for s in SECTIONS}; self.data = {s: {} for s in SECTIONS}; self.steps = []
        out.mkdir(parents=True, exist_ok=True)

    @property
    def left(self) -> float: return self.budget - (time.time() - self.t0)

    def step(self, section:str, name:str, f, est:float=0):
        "Run `f()` unless the budget can't hold `est` more seconds; a failure or a time-out is recorded and the report goes on"
        row = dict(section=section, step=name, status='skipped', seconds=0., error='')
        if self.left < est: row['error'] = f"time budget: {self.left:.0f} s left, needs about {est:.0f} s"
        else:
            t,log = time.time(),io.StringIO()
            signal.signal(signal.SIGALRM, _timeout); signal.alarm(max(1, int(self.left)))
            try:
                with contextlib.redirect_stdout(log): res = f()
                row['status'] = 'ok'
            except Exception as e:
                res,row['status'] = None,'failed'
                row['error'] = f"{type(e).__name__}: {e}".strip()[:500]
                row['trace'] = traceback.format_exc()[-3000:]
            finally: signal.alarm(0)
            row['seconds'] = round(time.time() - t, 1)
            row['log'] = log.getvalue()[-2000:]
        self.steps.append(row)
        print(f"[{time.time() - self.t0:6.0f} s] {section} / {name}: {row['status']} ({row['seconds']} s) {row['error']}", flush=True)
        self.write()
        return res if row['status'] == 'ok' else None

    def add(self, section:str, text:str='', **data):
        self.md[section].append(text); self.data[section].update(data)

    def write(self):
        lines = ['# GPU report', '']
        for s in SECTIONS:
            lines += [f'## {s}', '', *[t for t in self.md[s] if t]]
            fails = [r for r in self.steps if r['section'] == s and r['status'] != 'ok']
            if fails: lines += ['Steps not done:', '', *[f"- {r['step']}: {r['status']}: {r['error']}" for r in fails], '']
        lines += ['## Steps', '', _md(pd.DataFrame([{k: r[k] for k in ('section', 'step', 'status', 'seconds')} for r in self.steps])), '']
        (self.out/'gpu_report.md').write_text('\n'.join(lines))
        (self.out/'gpu_report.json').write_text(json.dumps(dict(sections=self.data, steps=self.steps,
                                                               elapsed_s=round(time.time() - self.t0, 1)), indent=1, default=str))

class StepTimeout(Exception): pass
def _timeout(*_): raise StepTimeout('the time budget ran out during this step')

def _md(df:pd.DataFrame) -> str: return df.to_markdown(index=False, floatfmt='.3f') if len(df) else '(no rows)'

def environment(dev) -> dict:
    "What the figures were measured with"
    import fastai, timm, torchvision
    env = dict(device=str(dev), torch=torch.__version__, torchvision=torchvision.__version__, fastai=fastai.__version__,
               timm=timm.__version__, python=platform.python_version(), cpu=cpu_description())
    if dev.type == 'cuda':
        p = torch.cuda.get_device_properties(dev)
        env.update(gpu=torch.cuda.get_device_name(dev), capability='.'.join(map(str, torch.cuda.get_device_capability(dev))),
                   memory_GiB=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), driver=_driver(),
                   bf16=torch.cuda.is_bf16_supported(), tf32='on (matmul and cuDNN)')
    return env

def _driver() -> str:
    try:
        import subprocess
        return subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'], capture_output=True,
                              text=True, timeout=20).stdout.strip() or 'unknown'
    except Exception: return 'unknown'

def matmul_tflops(dev, n:int) -> float:
    "Measured bf16 matrix-product rate, TFLOP/s: the median of 10 products of random `n`x`n` matrices after 3 warm-ups"
    a,b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
    ts = []
    for i in range(13):
        t = device_time(dev.type); a @ b; t = device_time(dev.type) - t
        if i >= 3: ts.append(t)
    return 2 * n**3 / pd.Series(ts).median() / 1e12

def datasheet_peak(name:str):
    return next((v for k,v in DATASHEET_BF16.items() if k in name), None)

def correctness(rep:Report, dev, quick:bool):
    "The notebooks' `#| cuda` cells, then each device check"
    rows = []
    for nb in device_checks.cuda_notebooks(root/'nbs'):
        r = rep.step('CUDA correctness', f'{nb.name} to its last #| cuda cell', lambda: device_checks.run_notebook(nb, dev.type == 'cuda'), est=20)
        note = (f"{r} #| cuda cells run" if dev.type == 'cuda' else "cuda cells skipped: no CUDA device") if r is not None else ''
        rows.append(_result(rep, f'notebook {nb.name}', note))
    for c in device_checks.CHECKS:
        rep.step('CUDA correctness', c.__name__, lambda: c(dev), est=3)
        rows.append(_result(rep, c.__name__, c.__doc__))
    df = pd.DataFrame(rows)
    rep.add('CUDA correctness', f"On {dev}: {int((df.result == 'pass').sum())} of {len(df)} pass.\n\n{_md(df)}\n", checks=rows)

def _result(rep, name, what) -> dict:
    r = rep.steps[-1]
    return dict(check=name, what=what, result={'ok': 'pass', 'failed': 'FAIL'}.get(r['status'], r['status']),
                seconds=r['seconds'], error=r['error'])

def train_configs(dev, compile:bool, trial_steps:int, picked:dict) -> dict:
    "Name -> set-up of a `Learner`: the configs of the training table"
    amp = 'fp16' if dev.type == 'cuda' else device_amp_mode('cpu').value  # fastai stock and NCHW AMP: the device's AMP
    def auto(l):
        picked['learn'] = l
        return l.add_cbs([ChannelsLast(auto=True, trial_steps=trial_steps), MixedPrecision('auto')])
    cfgs = {'NCHW fp32': lambda l: l,
            f'NCHW AMP {amp}': lambda l: l.add_cb(MixedPrecision(amp)),
            'CL fp16 (ours)': lambda l: l.to_channelslast(amp_mode='fp16'),
            'CL bf16 (ours)': lambda l: l.to_channelslast(amp_mode='bf16'),
            'fastai stock': lambda l: l.add_cbs([FastaiChannelsLast(), FastaiMixedPrecision(amp)]),
            'auto (ours)': auto}
    if compile:  # layout against compile: NCHW compiled as it is (inductor picks its layouts), and ours, `compile=True`
        c = bench_configs(amp, dev.type, compile=True)
        cfgs.update({f'NCHW AMP {amp} + compile': c['NCHW AMP compiled'], f'CL {amp} (ours) + compile': c['CL AMP compiled']})
    return cfgs

def throughput(rep:Report, dev, model:str, size:int, bs:int, steps:int, repeats:int, compile:bool, quick:bool):
    "Training and inference tables of `model`, and what utilisation and auto need from them"
    import timm
    trial_steps = 1 if quick else 2  # timed trial steps per config (`ChannelsLast`'s default is 3)
    n_cfgs = 2 * len(trial_precisions(dev.type))  # the trial's: each format in each precision it times
    picked = {}
    def train():
        nonlocal bs
        while True:
            try:
                dls = device_dls(size, bs, steps, dev)
                cfgs = train_configs(dev, compile, trial_steps, picked)
                warmup = max(1, math.ceil(n_cfgs * (1 + trial_steps) / steps))  # the `auto` trial ends in the warm-up
                return benchmark(lambda: timm.create_model(model, num_classes=10), dls, steps=steps, repeats=repeats,
                                 warmup=warmup, configs=cfgs, validate=False)
            except torch.OutOfMemoryError:
                if bs <= 8: raise
                bs //= 2; gc.collect(); torch.cuda.empty_cache()
    df = rep.step('Training throughput', f'{model} training', _autotuned(train), est=10 if quick else 50 + 60*compile)
    head = f"### {model}, {size}px, batch {bs}, {steps} steps a round, {repeats} rounds\n"
    if df is None: return
    decision = getattr(getattr(picked.get('learn'), 'channels_last', None), 'decision', None)
    rep.add('Training throughput', head + '\n' + _md(_shown(df)) + '\n',
            **{model: dict(size=size, bs=bs, rows=df.to_dict(orient='records'))})
    _utilisation(rep, dev, model, size, bs, df)
    _auto(rep, model, df, decision)
    def infer():
        dls = device_dls(size, bs, steps, dev)
        # no `auto` (a training trial); the compiled configs (inference graphs only: a forward compile each) with `compile`
        cfgs = {k: v for k,v in train_configs(dev, compile, trial_steps, {}).items() if not k.startswith('auto')}
        return benchmark(lambda: timm.create_model(model, num_classes=10), dls, steps=steps, repeats=repeats, configs=cfgs,
                         inference=True)
    di = rep.step('Inference throughput', f'{model} inference', _autotuned(infer), est=5 if quick else 10 + 30*compile)
    if di is not None:
        rep.add('Inference throughput', head.replace('steps a round', 'batches a round') + '\n' + _md(_shown(di)) + '\n',
                **{model: dict(size=size, bs=bs, rows=di.to_dict(orient='records'))})

def _autotuned(f):
    "`f` with cuDNN's autotuner on, as fastai sets it (`defaults.benchmark`)"
    # for timed steps only: it costs seconds per new shape, and checks run each shape once (with it on everywhere,
    # efficientnet_b0's thrash check took 135 s on an H100, the correctness notebook 105 s)
    def _inner():
        old,torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark,True
        try: return f()
        finally: torch.backends.cudnn.benchmark = old
    return _inner

def _shown(df):
    "The table as the report shows it: fastai stock is a row of it, so no 'vs fastai stock' column"
    return df.drop(columns=['vs fastai stock'])

def _utilisation(rep, dev, model, size, bs, df):
    "FLOPs of a training step (`FlopCounterMode`) over its time, against the measured matmul rate and the datasheet"
    def flops():
        import timm
        from torch.utils.flop_counter import FlopCounterMode
        m = timm.create_model(model, num_classes=10).to(dev)
        with FlopCounterMode(display=False) as fc: m(torch.randn(2, 3, size, size, device=dev))
        # a training step is about 3 forwards (backward: one for the input gradient, one for the weights'). Counting
        # the backward itself over-counts depthwise convolutions: `convolution_backward` of convnext_tiny counts 51.9
        # GFLOP an image against 8.9 for its whole forward (torch 2.11 and 2.14)
        return 3 * fc.get_total_flops() / 2  # per image
    per_img = rep.step('Utilisation', f'{model} FLOPs per image', flops, est=3)
    if per_img is None: return
    best = df.loc[df['img/s'].idxmax()]
    tf = per_img * best['img/s'] / 1e12
    env = rep.data['Environment']
    mm,peak = env.get('matmul_bf16_TFLOPs'),env.get('datasheet_bf16_TFLOPs')
    row = dict(model=model, size=size, bs=bs, GFLOP_per_img=per_img / 1e9, best_config=best['config'], img_s=best['img/s'],
               TFLOPs=tf, pct_of_matmul=100 * tf / mm if mm else None, pct_of_datasheet=100 * tf / peak if peak else None)
    rep.data['Utilisation'].setdefault('rows', []).append(row)

def _auto(rep, model, df, decision):
    "`auto` against the best fixed config (compiled ones left out: `auto` does not compile)"
    fixed = df[~df.config.str.startswith('auto') & ~df.config.str.contains('compile')]
    best,auto = fixed.loc[fixed['img/s'].idxmax()],df[df.config.str.startswith('auto')]
    if not len(auto): return
    a = float(auto['img/s'].iloc[0])
    rep.data['Auto'].setdefault('rows', []).append(dict(model=model, auto_img_s=a, best_fixed=best['config'], best_img_s=best['img/s'],
                                                        auto_vs_best=a / best['img/s'], picked=config_name(decision) if decision else 'None'))

def thrash(rep:Report, dev, models:list, size:int):
    "What each op of `OPS` returns on this device; `check_channels_last` of each model on this device and on the CPU"
    import timm
    from collections import Counter
    ops = rep.step('Thrash', 'op probes', lambda: op_probes(dev), est=2)
    if ops: rep.add('Thrash', f"Ops given a channels-last input (4x8x16x16) on {dev}: the format of the output and of the gradient "
                    f"they return for the input (one given in channels-last).\n\n{_md(pd.DataFrame(ops))}\n", ops=ops)
    rows = []
    for name in models:
        def one():
            s = 224 if name.startswith(TRANSFORMERS) else size
            m = timm.create_model(name)
            out = dict(model=name, size=s)
            for where,d in (('cpu', torch.device('cpu')), (dev.type, dev)):
                r = check_channels_last(m, (2, 3, s, s), device=d, name=name, target='cuda' if where == 'cpu' else None)
                out[f'{where} thrash'] = len(r.thrash_points)
                out[f'{where} where'] = ', '.join(f"{t} x{n}" for t,n in Counter(r.types[p] for p in r.thrash_points).most_common())
                out[f'{where} fwd copies'] = r.fwd_copies if r.copies_counted else 'n/a'  # torch 2.11's profiler: no strides
                if where == 'cpu':  # what the kernel table says CUDA adds
                    out['predicted (--target cuda)'] = ', '.join(f"{t} x{n}" for t,n in Counter(r.types[p] for p in r.thrash_points + r.target_thrash_points).most_common())
            return out
        r = rep.step('Thrash', name, one, est=2)
        if r is not None: rows.append(r)
    if not rows: return
    df = pd.DataFrame(rows)
    kinds = lambda w: {k.rsplit(' x', 1)[0] for k in w.split(', ') if k}
    # the table names every layer whose CUDA kernel drops the format; on a GPU fewer of them are handed channels-last
    df['agree'] = ([kinds(p) == kinds(w) for p,w in zip(df['predicted (--target cuda)'], df['cuda where'])] if dev.type == 'cuda'
                   else 'n/a: no GPU ran')
    rep.add('Thrash', f"`check_channels_last` at batch 2 ({size}px; transformers 224px), forward and backward, on the CPU "
            f"and on {dev}, and what `check --target cuda` predicts on the CPU; `agree`: the prediction names the kinds of layer "
            f"that lose the format on the GPU. A row that disagrees is a finding.\n\n{_md(df)}\n",
            rows=rows)

import torch.nn.functional as F
OPS = {  # ops that some devices' kernels are said to return in NCHW for a channels-last input (see `check`'s evidence)
    'conv2d 3x3': lambda x: F.conv2d(x, torch.ones(8, 8, 3, 3, device=x.device, dtype=x.dtype).contiguous(memory_format=torch.channels_last), padding=1),
    'batch_norm': lambda x: F.batch_norm(x, None, None, training=True),
    'group_norm': lambda x: F.group_norm(x, 2),
    'instance_norm': lambda x: F.instance_norm(x),
    'reflection_pad2d': lambda x: F.pad(x, (1, 1, 1, 1), mode='reflect'),
    'replication_pad2d': lambda x: F.pad(x, (1, 1, 1, 1), mode='replicate'),
    'pixel_shuffle': lambda x: F.pixel_shuffle(x, 2),
    'pixel_unshuffle': lambda x: F.pixel_unshuffle(x, 2),
    'max_pool2d': lambda x: F.max_pool2d(x, 2),
    'avg_pool2d': lambda x: F.avg_pool2d(x, 2),
    'interpolate bilinear': lambda x: F.interpolate(x, scale_factor=2, mode='bilinear'),
}

def op_probes(dev) -> list:
    "Each op of `OPS` on a channels-last input on `dev`: the format of its output and of the gradient it gives its input"
    rows = []
    for dtype in (torch.float32, torch.float16 if dev.type == 'cuda' else torch.bfloat16):
        for name,f in OPS.items():
            x = torch.randn(4, 8, 16, 16, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
            try:
                y = f(x)
                y.backward(torch.randn(y.shape, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last))
                rows.append(dict(op=name, dtype=str(dtype)[6:], output=format_name(y), input_grad=format_name(x.grad)))
            except Exception as e: rows.append(dict(op=name, dtype=str(dtype)[6:], output=f'{type(e).__name__}: {e}'[:80], input_grad=''))
    return rows

def mends(rep:Report, dev, quick:bool):
    "`benchmarks/mend_device.py` on this device: training img/s of each case native against mended, and the verdict"
    cases = mend_device.cases_for(dev.type)
    size,bs,steps,repeats = (32, 8, 2, 2) if quick else (224, 64, 8, 5)
    rows = []
    for c in cases[:1] if quick else cases:
        r = rep.step('Mends', c, lambda: mend_device.measure(c, device_dls(size, bs, steps, dev), steps, repeats), est=5 if quick else 25)
        if r is not None: rows.append(r)
        if dev.type == 'cuda': torch.cuda.empty_cache()
    rep.add('Mends', f"Training img/s of models whose layers call an op that {dev.type}'s kernels run in NCHW for a channels-last input: "
            f"`to_channelslast()` without the mends for such ops ('native') against `to_channelslast(mend='all')` ('mended'), "
            f"interleaved rounds, {size}px, batch {bs}, {steps} steps a round, median of {repeats} rounds. `faster` (ratio at "
            f"least 1.05, the mended slowest round above the native median) means: put '{dev.type}' in that op's "
            f"`device_losses.faster_on`, and the figures in its `speed`.\n\n{_md(pd.DataFrame(rows))}\n", rows=rows)

def optimizer_configs(amp:str=None) -> dict:
    "Name -> set-up of a `Learner`: fastai's stock callbacks (its `Adam`, its recorder), ours (the fused twin of `Adam`, the lean recorder), ours with fastai's `Adam` kept, and ours with torch's fused `AdamW` through `OptimWrapper`"
    from functools import partial
    from fastai.optimizer import OptimWrapper
    amp = amp or device_amp_mode('cuda' if torch.cuda.is_available() else 'cpu').value
    def with_opt(opt_func, **kwargs):
        def setup(learn): learn.opt_func = opt_func; return learn.to_channelslast(**kwargs)  # before `fit` creates the optimizer
        return setup
    return {'fastai stock': lambda l: l.add_cbs([FastaiChannelsLast(), FastaiMixedPrecision(amp)]),
            'ours': lambda l: l.to_channelslast(),
            "ours, fastai's Adam": lambda l: l.to_channelslast(fast_opt=False),
            'ours, torch AdamW(fused)': with_opt(partial(OptimWrapper, opt=partial(torch.optim.AdamW, fused=True)))}

def breakdown(rep:Report, dev, quick:bool):
    "Where a fastai training step goes, fastai stock against ours with each optimizer: `Learner.channelslast_profile`"
    import timm
    n_steps,warmup = (3, 1) if quick else (10, 3)
    rows = []
    for model,size,bs in [('resnet10t', 32, 16)] if quick else BREAKDOWN:
        def one():
            dls = device_dls(size, bs, warmup + 2*n_steps + 2, dev)  # the profile's steps in one epoch
            return profile_configs(lambda: timm.create_model(model, num_classes=10), dls, n_steps=n_steps, warmup=warmup,
                                   configs=optimizer_configs('fp16' if dev.type == 'cuda' else None))
        profs = rep.step('Step breakdown', f'{model} bs {bs}', _autotuned(one), est=10 if quick else 40)
        for cfg,p in (profs or {}).items():
            rows.append(dict(model=model, size=size, bs=bs, config=cfg, **{ph: p.loc[ph, 'ms/step'] for ph in step_phases},
                             step=p.loc['step', 'ms/step'], **{f'{ph} share': p.loc[ph, 'share'] for ph in ('optimizer step', 'other')},
                             unsynced=p.attrs['unsynced ms/step'], copies=p.attrs['copies/step'], aten_ops=int(p.loc['step', 'aten ops']),
                             optimizer_ops=int(p.loc[['optimizer step', 'zero_grad'], 'aten ops'].sum()),
                             host_reads=int(p.loc['step', 'host reads']), host_syncs=p.attrs['host syncs/step']))
    if rows:
        rep.add('Step breakdown', "ms a training step per phase (`learn.channelslast_profile`, median of "
                f"{n_steps} steps, the device synchronised at each phase boundary; `unsynced`: the plain steps between them): "
                "fastai's stock callbacks (its `Adam` and recorder), ours (`to_channelslast()`: the fused twin of `Adam`, the "
                "lean recorder), ours with fastai's `Adam` (`fast_opt=False`) and ours with torch's fused `AdamW` through "
                "`OptimWrapper`. `aten_ops`, `optimizer_ops` (the optimizer's step and zero_grad) and `host_reads`: one "
                "step's, counted alike on any device; `host_syncs`: per step, counted by `torch.cuda.set_sync_debug_mode` "
                "(none counted off CUDA).\n\n" + _md(pd.DataFrame(rows)) + '\n', rows=rows)

class HostBatches(DataLoader):
    "A fastai `DataLoader` over `k` batches of tensors in host memory, handed out in turn for `n` items: fastai moves each to its device"
    def __init__(self, x, y, bs, n, device): super().__init__(bs=bs, n=n, device=device); self.x,self.y = x,y
    def create_batches(self, samps):
        k = len(self.x) // self.bs
        for i in range(len(list(samps)) // self.bs): j = (i % k) * self.bs; yield self.x[j:j+self.bs], self.y[j:j+self.bs]

def host_dls(size:int, bs:int, steps:int, device, k:int=4) -> DataLoaders:
    "`steps` training batches and `steps//4` validation ones, from `k` distinct batches in host memory (no decoding: the copies are what is timed)"
    g = torch.Generator().manual_seed(0)
    x,y = torch.randn(k*bs, 3, size, size, generator=g),torch.randint(0, 10, (k*bs,), generator=g)
    return DataLoaders(HostBatches(x, y, bs, steps*bs, device), HostBatches(x, y, bs, max(1, steps//4)*bs, device), device=device)

class _Counted(Callback):
    "Host reads and, on CUDA, host syncs between the first and the last callback of each training batch"
    def __init__(self, first:bool, box:dict): self.first,self.box,self.order = first,box,(-10**9 if first else 10**9)
    def before_batch(self):
        if self.first and self.training: self.box['reads'].phase = 'batch'; self.box['on'] = True
    def after_batch(self):
        if not self.first and self.box.get('on'): self.box['reads'].phase = None; self.box['on'] = False; self.box['n'] += 1

def _count_fit(learn, dev) -> dict:
    "One epoch of `learn` with its host reads and host syncs per training batch counted"
    box = {'reads': HostReads(phase=None), 'n': 0}
    syncs = []
    def hook(msg, *a, **k):
        if box.get('on') and 'synchroniz' in str(msg): syncs.append(msg)
    with box['reads'], warnings.catch_warnings():
        warnings.simplefilter('always'); old = warnings.showwarning; warnings.showwarning = hook
        if dev.type == 'cuda': torch.cuda.set_sync_debug_mode('warn')
        try: learn.fit(1, cbs=[_Counted(True, box), _Counted(False, box)])
        finally:
            warnings.showwarning = old
            if dev.type == 'cuda': torch.cuda.set_sync_debug_mode(0)
    n = max(box['n'], 1)
    return {'host reads/batch': box['reads'].counts['batch'] / n, 'host syncs/batch': len(syncs) / n if dev.type == 'cuda' else None}

def epochs(rep:Report, dev, quick:bool):
    "A fastai epoch, fastai stock against ours: batches from host memory (fastai's copies to the device included), validation, the default callbacks"
    import copy, timm
    steps,repeats = (6, 2) if quick else (40, 2)
    cfgs = {k: v for k,v in optimizer_configs('fp16' if dev.type == 'cuda' else None).items() if k in ('fastai stock', 'ours')}
    rows = []
    for model,size,bs in [('resnet10t', 32, 16)] if quick else EPOCHS:
        def one():
            dls = host_dls(size, bs, steps, dev)
            base = timm.create_model(model, num_classes=10)
            learns = {k: f(Learner(dls, copy.deepcopy(base).to(dev), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)) for k,f in cfgs.items()}
            times = {k: [] for k in learns}
            for r in range(1 + repeats):  # a warm-up epoch each, then epochs in turns
                for k,l in learns.items():
                    t = device_time(dev.type)
                    with contextlib.redirect_stderr(io.StringIO()): l.fit(1, 1e-3)
                    if r: times[k].append(device_time(dev.type) - t)
            out = []
            for k,l in learns.items():
                s = pd.Series(times[k])
                out.append(dict(model=model, size=size, bs=bs, config=k, **{'epoch s': s.median(), 'min': s.min(), 'max': s.max()},
                                **{'img/s': steps*bs / s.median()}, **_count_fit(l, dev)))
            return out
        res = rep.step('Epochs', f'{model} bs {bs}', _autotuned(one), est=10 if quick else 45)
        rows += res or []
    if rows:
        df = pd.DataFrame(rows)
        df['vs fastai stock'] = df['img/s'] / df.groupby(['model', 'bs'])['img/s'].transform(lambda s: s.iloc[0])
        rep.add('Epochs', f"`learn.fit(1)` with fastai's default callbacks (progress bar included) and `accuracy`: {steps} training "
                f"batches from host memory and {max(1, steps//4)} validation batches, fastai moving each to the device; a warm-up "
                f"epoch each, then {repeats} epochs each in turns, the median. fastai stock: its `ChannelsLast` and `MixedPrecision`, "
                "its `Adam` and recorder; ours: `to_channelslast()`. Host reads and syncs are a training batch's, from one more "
                "epoch.\n\n" + _md(df) + '\n', rows=df.to_dict(orient='records'))

def summarise(rep:Report):
    "The Utilisation and Auto tables from the rows the model steps left"
    u = rep.data['Utilisation'].get('rows')
    if u: rep.md['Utilisation'] = ["FLOPs per image of a training step (3 forwards, each counted by `torch.utils.flop_counter`) times "
                  "the best config's img/s, against the bf16 matmul measured in this run and the datasheet's dense bf16 peak.\n\n"
                  + _md(pd.DataFrame(u)) + '\n']
    a = rep.data['Auto'].get('rows')
    if a: rep.md['Auto'] = ["`ChannelsLast(auto=True)` with `MixedPrecision('auto')` (its trial in the warm-up rounds) against the "
                  "best fixed config of the same run (compiled ones left out).\n\n" + _md(pd.DataFrame(a)) + '\n']

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='gpu_report', help='folder for gpu_report.md and gpu_report.json')
    ap.add_argument('--quick', action='store_true', help='tiny models and sizes: a few minutes on a CPU')
    ap.add_argument('--device', default=None, help='default: cuda if there is one, else cpu')
    ap.add_argument('--budget', type=float, default=None, help='seconds for all steps (default 440, quick 600)')
    ap.add_argument('--parts', default=','.join(PARTS), help=f'comma-separated, of: {", ".join(PARTS)} (a rerun of what a first run missed)')
    ap.add_argument('--models', default=None, help="comma-separated models for the 'others' part (default: the four of the issue)")
    a = ap.parse_args()
    parts = a.parts.split(',')
    if set(parts) - set(PARTS): ap.error(f"--parts {a.parts!r}: valid parts are {', '.join(PARTS)}")
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    rep = Report(Path(a.out), a.budget or (600 if a.quick else 440))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # "NCHW fp32" is TF32 on a GPU
    torch.backends.cudnn.benchmark = False  # on in the timed steps only (`_autotuned`)
    env = rep.step('Environment', 'environment', lambda: environment(dev))
    if env:
        env['matmul_bf16_TFLOPs'] = rep.step('Environment', 'bf16 matmul', lambda: matmul_tflops(dev, 1024 if a.quick else 8192))
        env['datasheet_bf16_TFLOPs'] = datasheet_peak(env.get('gpu', ''))
        rep.add('Environment', _md(pd.DataFrame([dict(key=k, value=v) for k,v in env.items()])) + '\n', **env)
    rep.add('Training throughput', 'Published figures to read ours against:\n\n' + '\n'.join(f'- {s}' for s in ANCHORS) + '\n')
    if 'correctness' in parts: correctness(rep, dev, a.quick)
    if 'mends' in parts: mends(rep, dev, a.quick)
    if a.quick: plan = [('resnet10t', 32, 16, 2, 1, False)]; others = [('mobilenetv3_small_050', 32, 16, 2, 1, False)]  # depthwise convs and SE, small
    else:
        plan = [('resnet50', 224, 256, 8, 3, True)]
        others = [(m, 224, 128, 8, 3, m == 'convnext_tiny') for m in (a.models.split(',') if a.models else OTHERS)]
    for p in plan if 'resnet50' in parts else []: throughput(rep, dev, *p, quick=a.quick)
    summarise(rep)
    if 'breakdown' in parts: breakdown(rep, dev, a.quick)
    if 'epochs' in parts: epochs(rep, dev, a.quick)
    if 'thrash' in parts: thrash(rep, dev, ['resnet18', 'resnet50_gn', 'tresnet_m'] if a.quick else SURVEY, 32 if a.quick else 96)
    for p in others if 'others' in parts else []:
        throughput(rep, dev, *p, quick=a.quick)
        if dev.type == 'cuda': torch.cuda.empty_cache()
    summarise(rep)
    rep.write()
    print((rep.out/'gpu_report.md').read_text())

if __name__ == '__main__': main()
