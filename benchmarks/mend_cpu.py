"""CPU training speed of the models that mending changes: channels-last unmended against mended, side by side.

For each model that thrashes on a CPU as it is (the survey's nfnet_l0, dm_nfnet_f0, tresnet_m, resnest14d and
cspdarknet53, and mobilevit_xxs), `benchmark` times real fastai training steps of three configs in turns, round by round, on the same
batches: NCHW (float32), `to_channelslast(mend=False)` and `to_channelslast()` (mended), both channels-last configs in
the CPU's default precision. It prints the median img/s (min and max beside it) and the ratio mended / unmended per
round's median. Run: `python benchmarks/mend_cpu.py --md` (about 5 minutes on 2 cores)."""
import warnings
import pandas as pd, timm, torch
from fastcore.script import call_parse
from channelslast.all import *

CONFIGS = {'NCHW fp32': lambda l: l,
           'CL unmended': lambda l: l.to_channelslast(mend=False),
           'CL mended': lambda l: l.to_channelslast()}
MODELS = ['nfnet_l0', 'dm_nfnet_f0', 'tresnet_m', 'resnest14d', 'cspdarknet53', 'mobilevit_xxs']

@call_parse
def main(models:str=','.join(MODELS), size:int=64, bs:int=16, steps:int=4, repeats:int=5, md:bool=False):
    warnings.filterwarnings('ignore')
    torch.manual_seed(0)
    print(f"{size}px, batch {bs}, {steps} steps a round, {repeats} rounds after a warm-up; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\nCPU: {cpu_description()}\n")
    rows = []
    for m in models.split(','):
        df = benchmark(lambda: timm.create_model(m, num_classes=10), synthetic_dls(size=size, bs=bs, n=5*bs*steps),
                       steps=steps, repeats=repeats, configs=CONFIGS, validate=False).set_index('config')
        rows.append({'model': m, **{f'{k} img/s': df.loc[k, 'img/s'] for k in CONFIGS},
                     'mended min-max': f"{df.loc['CL mended', 'min']:.1f}-{df.loc['CL mended', 'max']:.1f}",
                     'mended / unmended': df.loc['CL mended', 'img/s'] / df.loc['CL unmended', 'img/s'],
                     'mended / NCHW': df.loc['CL mended', 'img/s'] / df.loc['NCHW fp32', 'img/s']})
    out = pd.DataFrame(rows)
    print(out.to_markdown(index=False, floatfmt='.2f') if md else out.round(2).to_string(index=False))
