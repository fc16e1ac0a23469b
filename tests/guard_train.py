"""Train a model whose layers trip oneDNN #6035 under `to_channelslast()`, in a process of its own (a crash is an
exit code). Run by tests/test_guard.py: `python guard_train.py CASE OUT.json`, CASE one of: default, auto, fp32,
repvgg. Writes what hooks saw: the format reaching the guarded layer and the layer after it, losses, the decision."""
import json, sys, warnings
import torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from channelslast.all import *
warnings.filterwarnings('ignore')

case, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if case == 'repvgg':
    import timm
    model, n, size, bs = timm.create_model('repvgg_a2', num_classes=2), 32, 96, 8
else:
    model = nn.Sequential(nn.Conv2d(3, 32, 1, stride=2), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))
    n, size, bs = 128, 96, 8  # 16 training steps at 96px, batch 8: a full epoch, then validation
x = torch.randn(n, 3, size, size); y = (x[:, 0].mean((1, 2)) > 0).long()
dls = DataLoaders.from_dsets(list(zip(x, y)), list(zip(x[:16], y[:16])), bs=bs, device='cpu')
learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), lr=1e-3)
fast = dict(amp_mode='bf16') if default_amp_mode('cpu') else dict(use_amp=False)  # the CPU's fast precision, named: no workload choice
learn.to_channelslast(**{'default': fast, 'auto': dict(amp_mode='auto'), 'fp32': dict(use_amp=False), 'repvgg': fast}[case])
convs = [(n_, m) for n_,m in model.named_modules() if isinstance(m, nn.Conv2d)]
guarded = next(n_ for n_,m in convs if needs_cpu_guard(m))
after = next(n_ for n_,m in convs if not needs_cpu_guard(m) and n_ != guarded and m.kernel_size != (1, 1))  # a 3x3 after it
mods = dict(model.named_modules())
seen = {guarded: set(), after: set()}
for name in seen:  # a forward hook gets the arguments the layer's forward received, after any pre-hook (the guard's)
    mods[name].register_forward_hook(lambda m, a, o, name=name: seen[name].add(
        'channels_last' if is_channels_last(a[0]) and not a[0].is_contiguous() else 'nchw' if a[0].is_contiguous() else 'other'))
learn.fit(1)
json.dump(dict(guarded=guarded, after=after, guarded_layers=guarded_layers(model), seen={k: sorted(v) for k,v in seen.items()},
               steps=len(learn.recorder.losses), losses=[float(l) for l in learn.recorder.losses],
               decision=str(learn.channels_last.decision), dtype=str(learn.mixed_precision.dtype) if hasattr(learn, 'mixed_precision') else None),
          open(out, 'w'))
