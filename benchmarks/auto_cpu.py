"""Does `auto` end up as fast as the best fixed configuration? timm models where channels-last wins, ties and loses.

For each model: the 4 fixed configurations (NCHW/CL x fp32/AMP), `ChannelsLast(auto=True)` (searches the format at
float32) and `ChannelsLast(auto=True)` + `MixedPrecision('auto')` (searches format x AMP), timed with `benchmark`
(real fastai steps, interleaved, medians). The trial runs inside the warm-up rounds; the table compares each auto
run's steady speed with the best fixed config of its own search space.
Run: `python benchmarks/auto_cpu.py` (about 30 minutes on 2 cores)."""
import warnings, torch, timm, pandas as pd
from fastcore.script import call_parse
from channelslast.all import *

def configs(trial_steps, cbs):
    "The fixed configs and the two auto ones; the auto callbacks are kept in `cbs` to read their decisions"
    cfg = bench_configs('bf16', 'cpu')
    cfg = {k: cfg[k] for k in ('NCHW fp32', 'NCHW AMP', 'CL fp32', 'CL AMP')}
    def auto(name, amp):
        def _inner(l):
            cbs[name] = ChannelsLast(auto=True, trial_steps=trial_steps)
            return l.add_cbs([cbs[name]] + ([MixedPrecision('auto')] if amp else []))
        return _inner
    cfg['auto format'],cfg['auto format+AMP'] = auto('auto format', False),auto('auto format+AMP', True)
    return cfg

def _name(d): return config_name(d).replace('channels_last', 'CL').replace('contiguous', 'NCHW').replace(' + ', ' ')

@call_parse
def main(models:str='resnet50,resnet26t,mobilenetv3_large_100,efficientnet_b0,convnext_atto', size:int=128, bs:int=16,
         steps:int=8, repeats:int=6, trial_steps:int=3):
    warnings.filterwarnings('ignore')
    rows = []
    for name in models.split(','):
        dls = synthetic_dls(size=size, bs=bs, n=steps*bs*2)
        # warm-up rounds cover the longest trial: 4 configs x (1 warm-up + trial_steps) steps
        warmup = -(-4 * (trial_steps + 1) // steps) + 1
        cbs = {}
        cfgs = configs(trial_steps, cbs)
        df = benchmark(lambda: timm.create_model(name, num_classes=10), dls, steps=steps, repeats=repeats, warmup=warmup,
                       configs=cfgs, validate=False).set_index('config')
        sec = bs / df['img/s']  # seconds per step, median
        best_fmt = sec[['NCHW fp32', 'CL fp32']].min()
        best_all = sec[['NCHW fp32', 'NCHW AMP', 'CL fp32', 'CL AMP']].min()
        rows.append({'model': name, **{k: round(v, 3) for k,v in sec.items()},
                     'auto format vs best': round(sec['auto format'] / best_fmt, 3),
                     'auto format+AMP vs best': round(sec['auto format+AMP'] / best_all, 3),
                     'picked (format)': _name(cbs['auto format'].decision), 'picked (format+AMP)': _name(cbs['auto format+AMP'].decision)})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    res = pd.DataFrame(rows)
    print(f"\nseconds per step (median of {repeats} interleaved rounds of {steps} steps), {size}px, bs {bs}, torch {torch.__version__}, "
          f"native bf16: {cpu_has_native_bf16()}; 'vs best' = auto / best fixed config of its search space")
    print(res.to_markdown(index=False))
