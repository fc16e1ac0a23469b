"""Train a few steps with `to_channelslast()` inside fastai's `distrib_ctx`, or the same global batches on one process.
Run by tests/test_distributed.py: `torchrun --nproc_per_node 2 ddp_train.py OUT [--bf16] [--compile]` or
`python ddp_train.py OUT --single`. `--compile`: `to_channelslast(compile=True)`, each rank compiling its own model.
By default `to_channelslast()` lets the workload choose (the test pretends a CPU without native bf16: the float32
formats are the candidates, and under DDP every rank takes the first, untimed, so that no two choose apart); the single
process names the same, channels-last float32. `--bf16` forces bf16 autocast."""
import sys, torch, warnings
from pathlib import Path
from torch import nn
from fastai.vision.all import *
from fastai.distributed import DistributedDL
from channelslast.all import *
warnings.filterwarnings('ignore')

# fastai's DistributedDL broadcasts the shuffled indices as `.cuda()` tensors, which only NCCL needs; on CPU with gloo
# the same broadcast has to use CPU tensors. Test-only: the library never depends on this.
def _broadcast_cpu(self, t, rank):
    t = LongTensor(t); torch.distributed.broadcast(t, rank); return t.tolist()
DistributedDL._broadcast = _broadcast_cpu

N, BS, WS = 48, 4, 2  # 48 images, per-rank batch 4: 6 steps, each over a global batch of 8
def model():
    torch.manual_seed(0)  # the same initial weights on every rank and in the single run
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

g = torch.Generator().manual_seed(1)
items = list(zip(torch.randn(N, 3, 12, 12, generator=g), torch.randint(0, 3, (N,), generator=g)))

class CheckOrder(Callback):
    "Right before DDP wraps the model (order 11), it must already be channels-last, and stay unwrapped until then"
    order = 10.5
    def before_fit(self):
        assert not isinstance(self.model, nn.parallel.DistributedDataParallel)
        assert model_is_channels_last(self.model)
        self.learn.seen_ddp = []
    def before_batch(self):
        if self.training: self.learn.seen_ddp.append(isinstance(self.model, nn.parallel.DistributedDataParallel))

out, single, bf16, compile = Path(sys.argv[1]), '--single' in sys.argv, '--bf16' in sys.argv, '--compile' in sys.argv
if single:
    # step k of the 2-process run sees rank 0's k-th batch and rank 1's k-th batch: lay the items out that way
    half = N // WS
    order = [r*half + k*BS + i for k in range(half//BS) for r in range(WS) for i in range(BS)]
    dl = TfmdDL([items[i] for i in order], bs=BS*WS, shuffle=False)
else:
    dl = TfmdDL(items, bs=BS, shuffle=False)
dls = DataLoaders(dl, TfmdDL(items[:8], bs=BS), device='cpu')
learn = Learner(dls, model(), loss_func=nn.CrossEntropyLoss(), opt_func=SGD, lr=0.1, cbs=CheckOrder()).to_channelslast(**(dict(amp_mode='bf16') if bf16 else dict(use_amp=False) if single else {}), compile=compile)
# SyncBatchNorm is CUDA-only (and this model has no BatchNorm); Accelerate starts a gloo run on CPUs only with cpu=True
with learn.distrib_ctx(sync_bn=False, cpu=True):
    learn.fit(1)
rank = ('single' if single else str(rank_distrib())) + ('-bf16' if bf16 else '') + ('-compile' if compile else '')
n_cl = sum(isinstance(c, ChannelsLast) for c in learn.cbs)
n_mp = sum(isinstance(c, MixedPrecision) for c in learn.cbs)
torch.save(dict(state=learn.model.state_dict(), steps=len(learn.seen_ddp), ddp=all(learn.seen_ddp), n_cl=n_cl, n_mp=n_mp,
                cl=model_is_channels_last(learn.model), losses=torch.stack(learn.recorder.losses),
                dtype=str(getattr(learn, 'mixed_precision', None) and learn.mixed_precision.dtype), choice=learn.channelslast_choice(), compiled=compile and learn.channels_last.compiler.compiled(learn.model),
                compiles=len(learn.channelslast_compiled())), out/f'{rank}.pt')
