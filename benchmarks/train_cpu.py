"""Train timm resnet50 side by side: plain fp32 NCHW, fastai's stock ChannelsLast + MixedPrecision, and ours.

Configs run interleaved (A B C D A B C D ...) in one process so machine drift hits them alike; the first round is a
warm-up and is dropped. Prints the median seconds per epoch (min-max beside it) and the ratios.
Run: `python benchmarks/train_cpu.py` (about 4 minutes on 2 cores); `--md` also prints a Markdown table; `--compile`
adds our two configs with `compile=True` (compilation happens in the warm-up round and is not timed)."""
import time, warnings
import torch, timm, pandas as pd
from fastcore.script import call_parse
from fastai.vision.all import *
from fastai.callback.channelslast import ChannelsLast as FastaiChannelsLast
from fastai.callback.fp16 import MixedPrecision as FastaiMixedPrecision
from channelslast.all import *

def epoch_dls(n_batches, bs, size, device):
    "Random images: exactly `n_batches` training batches and one validation batch (`synthetic_dls` splits by fraction)"
    g = torch.Generator().manual_seed(0)
    ds = list(zip(torch.randn(bs*(n_batches+1), 3, size, size, generator=g), torch.randint(0, 10, (bs*(n_batches+1),), generator=g)))
    return DataLoaders(TfmdDL(ds[bs:], bs=bs, shuffle=True, drop_last=True, num_workers=0),
                       TfmdDL(ds[:bs], bs=bs, num_workers=0), device=device)

CONFIGS = {
    'fp32 NCHW': lambda l: l,
    'fastai ChannelsLast+MixedPrecision': lambda l: l.add_cbs([FastaiChannelsLast(), FastaiMixedPrecision()]),
    'ours to_channelslast()': lambda l: l.to_channelslast(),
    "ours to_channelslast(amp_mode='bf16')": lambda l: l.to_channelslast(amp_mode='bf16'),
}

COMPILED = {
    'ours to_channelslast(compile=True)': lambda l: l.to_channelslast(compile=True),
    "ours to_channelslast(amp_mode='bf16', compile=True)": lambda l: l.to_channelslast(amp_mode='bf16', compile=True),
}

def epoch_time(learn):
    with learn.no_bar(), learn.no_logging():
        t = time.perf_counter(); learn.fit(1, 1e-3)
    return time.perf_counter() - t

@call_parse
def main(model:str='resnet50', size:int=96, bs:int=32, batches:int=6, repeats:int=5, device:str='cpu', md:bool=False,
         compile:bool=False):
    warnings.filterwarnings('ignore')  # fastai's CUDA-only autocast warns on every fit off CUDA
    dls = epoch_dls(batches, bs, size, device)
    configs = {**CONFIGS, **(COMPILED if compile else {})}
    learns = {k: f(Learner(dls, timm.create_model(model, num_classes=10), loss_func=CrossEntropyLossFlat())) for k,f in configs.items()}
    times = {k: [] for k in learns}
    for r in range(repeats + 1):
        for k,l in learns.items():
            t = epoch_time(l)
            if r: times[k].append(t)
    df = pd.DataFrame({'config': list(times), 's/epoch (median)': [pd.Series(v).median() for v in times.values()],
                       'min': [min(v) for v in times.values()], 'max': [max(v) for v in times.values()]})
    med = df.set_index('config')['s/epoch (median)']
    df['speedup vs fp32 NCHW'] = med['fp32 NCHW'] / df['s/epoch (median)']
    df['speedup vs fastai stock'] = med['fastai ChannelsLast+MixedPrecision'] / df['s/epoch (median)']
    amp = learns['ours to_channelslast()'].mixed_precision
    print(f"{model}, {size}px, bs {bs}, {batches} train + 1 valid batches/epoch, {repeats} interleaved repeats; "
          f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
          f"CPU: {cpu_description()}, ours' default autocast dtype: {amp.dtype}")
    pd.set_option('display.width', 200)
    print(df.round(2).to_string(index=False))
    if md: print(df.round(2).to_markdown(index=False))
