"""Training speed of the mends for one device's kernels (`device_losses`): channels-last native against mended.

Each case is a model whose layers call one op that a device's kernel runs in NCHW for a channels-last input. For each,
`benchmark` times real fastai training steps of two configs in turns, round by round, on the same batches, both
channels-last in the device's default precision: `to_channelslast()` with none of these mends ('CL native': the op
loses the format) and `to_channelslast(mend='all')` ('CL mended'). A mend is **faster** on a device where the ratio of
median img/s mended / native is at least 1.05 and the mended config's slowest round beats the native median; its
device then goes in `device_losses.faster_on`, and its figures in `speed`.

    python benchmarks/mend_device.py --md                 # here: the cases whose op this device's kernels lose
    python benchmarks/mend_device.py --device cuda --md   # on a GPU (benchmarks/gpu_report.py --parts mends runs it)
"""
import warnings
from unittest import mock
import pandas as pd, timm, torch
from torch import nn
from fastcore.script import call_parse
from channelslast.all import *

def _net(norm, pre=nn.Identity, post=nn.Identity, mid:int=64):
    "A small conv net with `norm(channels)` after each conv, `pre` before the first and `post` after the last"
    c = lambda i, o, s=1: [nn.Conv2d(i, o, 3, s, 1, bias=False), norm(o), nn.ReLU()]
    return nn.Sequential(pre(), *c(3, 32), *c(32, mid, 2), *c(mid, mid), *c(mid, mid, 2), post(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(10))

CASES = {  # name -> (op, model maker)
    'InstanceNorm2d': ('aten::instance_norm', lambda: _net(lambda c: nn.InstanceNorm2d(c, affine=True))),
    'GroupNorm (resnet50_gn)': ('aten::native_group_norm', lambda: timm.create_model('resnet50_gn', num_classes=10)),
    'BlurPool2d reflect (resnetblur50)': ('aten::reflection_pad2d', lambda: timm.create_model('resnetblur50', num_classes=10)),
    'ReplicationPad2d': ('aten::replication_pad2d', lambda: _net(lambda c: nn.Sequential(nn.ReplicationPad2d(1), nn.Conv2d(c, c, 3, bias=False)))),
    'PixelShuffle + PixelUnshuffle': ('aten::pixel_shuffle', lambda: _net(nn.BatchNorm2d, pre=lambda: nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 3, 1)),
                                                                           post=lambda: nn.Sequential(nn.PixelShuffle(2), nn.Conv2d(16, 64, 1)))),
}
def cases_for(device_type:str) -> list:
    "The cases whose op `device_type`'s kernels lose the format (`lost_on`): the ones a mend can change there"
    return [k for k,(op,_) in CASES.items() if device_type in lost_on[op]]

CONFIGS = {'CL native': lambda l: l.to_channelslast(), 'CL mended': lambda l: l.to_channelslast(mend='all')}

def measure(case:str, dls, steps:int=4, repeats:int=5) -> dict:
    "One row: native and mended img/s (median, min, max) of `case` on `dls`'s device, their ratio and the verdict"
    op,make = CASES[case]
    torch.manual_seed(0); m = make(); m(torch.randn(2, 3, 64, 64))  # initialise lazy layers
    # no mend counts as measured faster while this runs: 'CL native' gets none, 'CL mended' all of them
    with mock.patch.dict(faster_on, {o: () for o in faster_on}):
        df = benchmark(m, dls, steps=steps, repeats=repeats, configs=CONFIGS, validate=False).set_index('config')
    nat,mnd = df.loc['CL native'],df.loc['CL mended']
    ratio = mnd['img/s'] / nat['img/s']
    return {'case': case, 'op': op[len('aten::'):], 'native img/s': nat['img/s'], 'native min': nat['min'], 'native max': nat['max'],
            'mended img/s': mnd['img/s'], 'mended min': mnd['min'], 'mended max': mnd['max'], 'mended / native': ratio,
            'faster': bool(ratio >= 1.05 and mnd['min'] > nat['img/s'])}

@call_parse
def main(device:str='cpu', cases:str=None, size:int=64, bs:int=16, steps:int=4, repeats:int=5, md:bool=False):
    warnings.filterwarnings('ignore')
    dev = torch.device(device)
    names = cases.split(',') if cases else cases_for(dev.type)
    where = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else cpu_description()
    print(f"{size}px, batch {bs}, {steps} steps a round, {repeats} rounds after a warm-up; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n{dev.type}: {where}\n")
    dls = synthetic_dls(size=size, bs=bs, n=5*bs*steps, device=dev)
    out = pd.DataFrame([measure(c, dls, steps, repeats) for c in names])
    print('\n' + (out.to_markdown(index=False, floatfmt='.2f') if md else out.round(2).to_string(index=False)))  # after the progress bars
    return out
