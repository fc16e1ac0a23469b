"""Train a LightningModule with `channelslast.lightning.ChannelsLast` on two CPU processes (`strategy='ddp'`, gloo),
or resume that run from its last checkpoint. Run by tests/test_lightning.py: `python lightning_train.py OUT`, then
`python lightning_train.py OUT --resume`, and `python lightning_train.py OUT --compile` (`compile=True`: each process
compiles its module in place, inside DDP); Lightning starts the second process by running this script again."""
import logging, sys, warnings, torch
from pathlib import Path
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl
from channelslast.lightning import ChannelsLast
from channelslast.core import model_is_channels_last, is_channels_last
from channelslast.compiling import compiles_since

warnings.simplefilter('always')  # DDP's "Grad strides do not match bucket view strides" must show if it happens
warnings.filterwarnings('ignore', '.*(does not have many workers|LeafSpec|logging interval).*')
logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)
out,resume,compile = Path(sys.argv[1]),'--resume' in sys.argv,'--compile' in sys.argv

class Net(pl.LightningModule):
    "3x3, 1x1 and depthwise convolutions with BatchNorm: the layers whose gradients DDP buckets"
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same initial weights in both processes
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 1),
                                 nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
        self.seen = []
        self.net[0].register_forward_pre_hook(lambda m, a: self.seen.append(is_channels_last(a[0])) if self.training else None)
    def forward(self, x): return self.net(x)
    def training_step(self, batch, i):
        self.ddp = isinstance(self.trainer.strategy.model, nn.parallel.DistributedDataParallel)
        self.params_cl = model_is_channels_last(self.net)
        x,y = batch; return F.cross_entropy(self(x), y)
    def configure_optimizers(self): return torch.optim.AdamW(self.parameters(), lr=1e-2)

class Probe(pl.Callback):
    "After `ChannelsLast`: the optimizer state's layout when training starts (restored from the checkpoint on resume)"
    def on_train_start(self, trainer, pl_module):
        self.state_cl = [is_channels_last(s['exp_avg']) for s in trainer.optimizers[0].state.values() if s['exp_avg'].ndim == 4]

g = torch.Generator().manual_seed(1)
data = TensorDataset(torch.randn(32, 3, 12, 12, generator=g), torch.randint(0, 3, (32,), generator=g))
lm,probe = Net(),Probe()
trainer = pl.Trainer(accelerator='cpu', devices=2, strategy='ddp', max_epochs=2 if resume else 1, logger=False, default_root_dir=out,
                     enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[ChannelsLast(compile=compile), probe, *([] if compile else [pl.callbacks.ModelCheckpoint(out, save_last=True)])])
trainer.fit(lm, DataLoader(data, batch_size=4), ckpt_path=out/'last.ckpt' if resume else None)
torch.save(dict(state=lm.state_dict(), seen=lm.seen, ddp=lm.ddp, params_cl=lm.params_cl, state_cl=probe.state_cl,
                step=trainer.global_step, fused=lm.channelslast['fused'],
                compiled=compile and lm.channelslast['compiler'].compiled(lm), compiles=len(compiles_since(0))),
           out/f"{'resume' if resume else 'compile' if compile else 'fit'}-{trainer.global_rank}.pt")
