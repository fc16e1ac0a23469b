"""Layout against compile, measured: NCHW or channels-last, eager or `torch.compile`d, for training and inference.

For each model, `benchmark` times real fastai steps of each configuration in turns, round by round, on the same
batches, every configuration in the device's fast precision (bf16 on a CPU with native bf16, else float32; fp16 on a
GPU): training steps (`fit`), then inference (`get_preds`), where the compiled configurations also run with inductor's
weight freezing (inference only: frozen weights can't train). Compiling happens in the warm-up round; its seconds are
the `compile s` column, apart from the steady-state img/s (median of the rounds, min and max beside it).
Run: `python benchmarks/compile_cpu.py --md` (about 30 minutes on 2 cores; `--models resnet18 --size 32` in one)."""
import warnings
import pandas as pd, timm, torch
from fastcore.script import call_parse
from channelslast.all import *

def train_configs(amp) -> dict:
    "The four configurations in the CPU's fast precision (`amp` None: its default, float32 where bf16 is emulated)"
    # not `bench_configs`: its AMP is the precision a device has, bf16 even where it is emulated
    return {'NCHW eager': lambda l: l.add_cb(MixedPrecision(amp)),
            'NCHW compiled': lambda l: nchw_compiled(l.add_cb(MixedPrecision(amp))),
            'CL eager': lambda l: l.to_channelslast(amp_mode=amp),
            'CL compiled': lambda l: l.to_channelslast(amp_mode=amp, compile=True)}

def infer_configs(amp) -> dict:
    "Each compiled configuration without and with inductor's freezing (asked for: it is off by default)"
    cfgs = train_configs(amp)
    return {'NCHW eager': cfgs['NCHW eager'],
            'NCHW compiled': lambda l: nchw_compiled(l.add_cb(MixedPrecision(amp)), options={'freezing': False}),
            'NCHW compiled (freezing)': lambda l: nchw_compiled(l.add_cb(MixedPrecision(amp)), options={'freezing': True}),
            'CL eager': cfgs['CL eager'],
            'CL compiled': lambda l: l.to_channelslast(amp_mode=amp, compile={'options': {'freezing': False}}),
            'CL compiled (freezing)': lambda l: l.to_channelslast(amp_mode=amp, compile={'options': {'freezing': True}})}

def nchw_compiled(l, **kwargs):
    "NCHW compiled the plain way, with `torch.compile`'s `kwargs` (`to_channelslast(compile=...)` would convert it first)"
    l.model.compile(**kwargs); return l

def table(model, dls, steps, repeats, configs, inference) -> pd.DataFrame:
    df = benchmark(lambda: timm.create_model(model, num_classes=10), dls, steps=steps, repeats=repeats, configs=configs,
                   validate=False, inference=inference)
    cols = ['config', 'img/s', 'min', 'max', 'compile s'] + (['top1 agree'] if inference else [])
    df = df[[c for c in cols if c in df]].copy()
    df.insert(4, 'vs NCHW eager', df['img/s'] / df.set_index('config').loc['NCHW eager', 'img/s'])
    df.insert(0, 'model', model)
    return df

@call_parse
def main(models:str='resnet50,convnext_tiny', size:int=96, bs:int=32, steps:int=6, infer_size:int=224, infer_bs:int=16,
         infer_steps:int=4, repeats:int=7, md:bool=False):
    warnings.filterwarnings('ignore')
    torch.manual_seed(0)
    amp = default_amp_mode('cpu') or False
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU: {cpu_description()}; precision: "
          f"{getattr(amp, 'value', 'fp32')}\n")
    show = (lambda df: df.to_markdown(index=False, floatfmt='.2f')) if md else (lambda df: df.round(2).to_string(index=False))
    for m in models.split(','):
        df = table(m, synthetic_dls(size=size, bs=bs, n=5*bs*steps), steps, repeats, train_configs(amp or None), False)
        print(f"training, {size}px, batch {bs}, {steps} steps a round, {repeats} rounds after a warm-up\n{show(df)}\n", flush=True)
        df = table(m, synthetic_dls(size=infer_size, bs=infer_bs, n=5*infer_bs*infer_steps), infer_steps, repeats,
                   infer_configs(amp or None), True)
        print(f"inference (get_preds), {infer_size}px, batch {infer_bs}, {infer_steps} batches a round, {repeats} rounds "
              f"after a warm-up\n{show(df)}\n", flush=True)
