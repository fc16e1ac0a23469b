"""Every fixed format x precision on this CPU, across models, input sizes and batch sizes: the data a CPU rule is fitted to and checked on.

    python benchmarks/cpu_cases.py --out benchmarks/cpu_rule/<cpu>.jsonl     # hours on 2 cores; resumable

One JSON line per case (model, size, batch): each configuration's img/s (median, min, max of `--repeats` rounds in
turns, `--steps` training steps a round, after a warm-up round) and the model's convolutions at that input size
and linear layers (`conv_table`: output pixels an image, channels, groups, kernel, stride: what a rule can read before training). Configurations:
plain (fastai as it is: NCHW float32, its optimizer and recorder), and NCHW/channels-last x float32/bf16, each with
the lean step around the model (the fused optimizer, the recorder on the device), so they differ only in format and
precision. A case already in the file is skipped: a run that stops goes on where it stopped."""
import argparse, json, sys, time, warnings
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import torch, timm
from torch import nn
from fastai.callback.core import Callback
from channelslast.all import *

SURVEY = ['resnet50_gn', 'regnety_008_tv', 'tresnet_m', 'resnetblur50', 'resnet18', 'resnet50', 'resnet26t', 'resnext50_32x4d',
          'regnetx_002', 'regnety_032', 'efficientnet_b0', 'efficientnetv2_rw_t', 'mobilenetv3_large_100', 'mobilenetv2_100',
          'convnext_atto', 'convnext_tiny', 'nfnet_l0', 'dm_nfnet_f0', 'densenet121', 'inception_v3', 'seresnext26d_32x4d',
          'ecaresnet26t', 'res2net50_26w_4s', 'resnest14d', 'dla34', 'cspdarknet53', 'rexnet_100', 'repvgg_a2']
EXTRA = ['resnet10t', 'mobilenetv3_small_100', 'efficientnet_lite0', 'regnetx_004', 'convnext_femto']  # small and depthwise-separable

class _Lean(Callback):
    "The lean step around an NCHW model: fastai's optimizer as its fused twin, the recorder on the device"
    order = -5
    def before_fit(self): fuse_optimizer(self.learn.opt) if self.learn.opt is not None else None; lean_recorder(self.learn)
    def after_fit(self): unlean_recorder(self.learn)

CONFIGS = {'plain': lambda l: l,
           'NCHW fp32': lambda l: l.add_cb(_Lean()),
           'NCHW bf16': lambda l: l.add_cbs([_Lean(), MixedPrecision('bf16')]),
           'CL fp32': lambda l: l.to_channelslast(use_amp=False),
           'CL bf16': lambda l: l.to_channelslast(amp_mode='bf16')}

_COLS = ['pixels', 'cin', 'cout', 'groups', 'kernel', 'stride', 'op']

def table(model:nn.Module, size:int) -> list:
    "`conv_table`'s rows at a `size` px input as lists in its column order (what `conv_frame` reads back)"
    return conv_table(model, (3, size, size))[_COLS].values.tolist()

def one(model_name:str, size:int, bs:int, steps:int, repeats:int) -> dict:
    mk = lambda: timm.create_model(model_name, num_classes=10)
    convs = table(mk(), size)
    dls = synthetic_dls(size=size, bs=bs, n=bs * (steps + 1) * 5 // 4 + bs)  # an epoch holds the timed steps
    t = time.time()
    df = benchmark(mk, dls, steps=steps, repeats=repeats, warmup=1, configs=CONFIGS, validate=False)
    rows = {r['config']: dict(ips=r['img/s'], min=r['min'], max=r['max']) for r in df.to_dict(orient='records')}
    return dict(model=model_name, size=size, bs=bs, steps=steps, repeats=repeats, seconds=round(time.time() - t, 1),
                configs=rows, table=convs, cpu=cpu_description(), torch=torch.__version__)

def _wait_while(flag:str):
    "Wait between cases while the file `flag` exists (another job needs the machine: a case timed beside it would be noise)"
    if not flag: return
    while Path(flag).exists(): Path(flag + '.idle').touch(); time.sleep(5)
    Path(flag + '.idle').unlink(missing_ok=True)

def retable(out:Path):
    "Each case's `table` from the model as `conv_table` reads it now"
    recs,models = [json.loads(l) for l in out.read_text().splitlines()],{}
    for r in recs:
        if 'configs' not in r: continue
        m = models.get(r['model']) or models.setdefault(r['model'], timm.create_model(r['model'], num_classes=10))
        r.pop('convs', None); r['table'] = table(m, r['size'])
    out.write_text(''.join(json.dumps(r) + '\n' for r in recs))

def _drop_noisy(out:Path, recs:list, spread:float) -> list:
    "`recs` without the cases whose rounds spread more than `spread` (max/min of a configuration), the file rewritten without them"
    keep = [r for r in recs if 'configs' not in r or max(v['max'] / v['min'] for v in r['configs'].values()) <= spread]
    print(f"measuring {len(recs) - len(keep)} cases again"); out.write_text(''.join(json.dumps(r) + '\n' for r in keep))
    return keep

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True); ap.add_argument('--models', default=','.join(EXTRA + SURVEY))
    ap.add_argument('--pause', default='', help='a file that, while it exists, holds the run between cases')
    ap.add_argument('--sizes', default='32,128'); ap.add_argument('--bs', default='8,32,64')
    ap.add_argument('--steps', default='10,3', help='training steps a round, for each size'); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--redo', type=float, default=0, help='measure again the cases where a configuration\'s max/min over rounds is above this (something else ran)')
    ap.add_argument('--tables', action='store_true', help="only (re)write each case's table of convolutions and linear layers, timing nothing")
    a = ap.parse_args()
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    if a.tables: return retable(out)
    recs = [json.loads(l) for l in out.read_text().splitlines()] if out.exists() else []
    if a.redo: recs = _drop_noisy(out, recs, a.redo)
    done = {(r['model'], r['size'], r['bs']) for r in recs}
    for size,steps in zip(map(int, a.sizes.split(',')), map(int, a.steps.split(','))):
        for bs in map(int, a.bs.split(',')):
            for m in a.models.split(','):
                if (m, size, bs) in done: continue
                _wait_while(a.pause)
                try: rec = one(m, size, bs, steps, a.repeats)
                except Exception as e: rec = dict(model=m, size=size, bs=bs, error=f"{type(e).__name__}: {e}"[:300])
                with out.open('a') as f: f.write(json.dumps(rec) + '\n')
                best = max(rec.get('configs', {'-': {'ips': 0}}).items(), key=lambda kv: kv[1]['ips'])[0] if 'configs' in rec else rec['error']
                print(f"{m} {size}px bs {bs}: {best} ({rec.get('seconds', 0)} s)", flush=True)

if __name__ == '__main__': main()
