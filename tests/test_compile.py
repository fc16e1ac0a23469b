"torch.compile on a channels-last learner: compiled once, not per batch, same losses as eager (slow: inductor compiles C++)"
import warnings, torch
import torch._dynamo.utils as dynamo_utils
from torch import nn
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import SGD
from channelslast.all import model_is_channels_last

def learner():
    torch.manual_seed(0)
    x,y = torch.randn(70, 3, 16, 16),torch.randint(0, 2, (70,))
    ds = list(zip(x, y))
    dls = DataLoaders.from_dsets(ds[:60], ds[60:], bs=8, device='cpu', shuffle=False)  # 60/8: a partial last batch
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=SGD, lr=0.05).to_channelslast()

def fit(learn, n):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore'); learn.fit(n)
    return torch.tensor(learn.recorder.losses)

def test_compile_with_channelslast():
    eager = fit(learner(), 1)
    learn = learner()
    learn.model = torch.compile(learn.model)
    compiled = fit(learn, 1)
    graphs = dynamo_utils.counters['stats']['unique_graphs']
    assert graphs >= 1
    assert model_is_channels_last(learn.model) and model_is_channels_last(learn.model._orig_mod)  # compile saw CL weights
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-4)
    fit(learn, 2)  # more epochs: train, partial last batch and validation are all compiled already
    assert dynamo_utils.counters['stats']['unique_graphs'] == graphs, dict(dynamo_utils.counters['stats'])
