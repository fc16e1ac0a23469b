"Long runs: 300+ batches with a partial last one, batch size and image size changing between epochs, memory stable"
import gc, warnings, psutil, torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from channelslast.all import is_channels_last

def dls_for(size, bs, n=1202):
    "`n` random images of `size`px: with bs 4, 300 full batches and a partial one of 2"
    g = torch.Generator().manual_seed(size)
    ds = list(zip(torch.randn(n, 3, size, size, generator=g), torch.randint(0, 2, (n,), generator=g)))
    return DataLoaders.from_dsets(ds, ds[:16], bs=bs, device='cpu', drop_last=False)

def test_long_run_keeps_format_and_memory():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    learn = Learner(dls_for(32, 4), model, loss_func=nn.CrossEntropyLoss()).to_channelslast(use_amp=False)  # its format kept, whatever the workload
    seen = []
    model[3].register_forward_pre_hook(lambda m, i: seen.append((is_channels_last(i[0]), tuple(i[0].shape))) if m.training else None)
    proc, rss = psutil.Process(), []
    # (image size, batch size) per epoch: progressive resizing and batch size changes. The data is made up front so
    # that RSS measures training alone; every shape has been seen by the 4th epoch, after which RSS must stay flat
    # (a batch kept per step would add 15 MB an epoch here)
    plan = [(32, 4), (48, 4), (40, 6), (48, 8), (32, 4), (40, 6), (48, 4), (32, 4), (48, 8), (40, 6)]
    data = {k: dls_for(*k) for k in set(plan)}
    for k in plan:
        learn.dls = data[k]
        with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
            warnings.simplefilter('ignore'); learn.fit(1)
        gc.collect(); rss.append(proc.memory_info().rss)
    assert all(cl for cl,_ in seen), 'every training batch reached the conv in channels-last'
    shapes = {s for _,s in seen}
    assert (2, 8, 32, 32) in shapes and (2, 8, 48, 48) in shapes  # partial last batches (1202 % 4 == 2) trained too
    assert {s[2] for s in shapes} == {32, 40, 48} and {s[0] for s in shapes} >= {4, 6, 8}
    assert len(seen) >= 301 * 2
    growth = (rss[-1] - rss[3]) / 2**20
    assert growth < 8, f"RSS grew {growth:.1f} MB over the last {len(plan) - 4} epochs: {[round(r/2**20) for r in rss]}"
