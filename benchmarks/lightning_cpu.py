"""The docs' table: a plain PyTorch loop, the same loop after `channelslast.optimize`, Lightning, and Lightning with
`channelslast.lightning.ChannelsLast` (and `precision=fast_precision(...)`), training timm's resnet50 at 96px, batch 32,
AdamW, side by side in one process: `--repeats` interleaved rounds of `--steps` steps each (the order rotating), the median step of a round
(Lightning's from one `on_train_batch_end` to the next, its first batch left out), medians over rounds with min-max.

    python benchmarks/lightning_cpu.py [--repeats 3] [--steps 5] [--md]"""
import argparse, copy, logging, statistics, sys, time, warnings
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import torch, timm
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl
import channelslast
from channelslast.all import cpu_description
from channelslast.lightning import ChannelsLast, fast_precision
logging.getLogger('lightning.pytorch').setLevel(logging.ERROR)

class Classifier(pl.LightningModule):
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, x): return self.model(x)
    def training_step(self, batch, i): x,y = batch; return F.cross_entropy(self(x), y)
    def configure_optimizers(self): return torch.optim.AdamW(self.parameters(), lr=1e-3)

class Clock(pl.Callback):
    def __init__(self): self.t = []
    def on_train_batch_end(self, *args): self.t.append(time.perf_counter())

def plain_step_s(model, opt, x, y, steps:int) -> float:
    "Median seconds a step of the loop a user writes (`channelslast.autocast`: nothing if not optimized)"
    ts = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        with channelslast.autocast(model): loss = F.cross_entropy(model(x), y)
        loss.backward(); opt.step(); opt.zero_grad()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts[1:])

def lightning_step_s(lm, loader, precision, cbs) -> float:
    clock = Clock()
    pl.Trainer(accelerator='cpu', devices=1, max_epochs=1, precision=precision, logger=False, enable_progress_bar=False,
               enable_model_summary=False, enable_checkpointing=False, callbacks=[*cbs, clock]).fit(lm, loader)
    return statistics.median(b - a for a,b in zip(clock.t, clock.t[1:]))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--steps', type=int, default=5); ap.add_argument('--md', action='store_true')
    a = ap.parse_args()
    torch.manual_seed(0)
    base = timm.create_model('resnet50', num_classes=10)
    x,y = torch.randn(32, 3, 96, 96),torch.randint(0, 10, (32,))
    loader = DataLoader(TensorDataset(x.repeat(a.steps + 2, 1, 1, 1), y.repeat(a.steps + 2)), batch_size=32)
    plain = copy.deepcopy(base); plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-3)
    ours = copy.deepcopy(base); ours,ours_opt = channelslast.optimize(ours, torch.optim.AdamW(ours.parameters(), lr=1e-3))
    precision = fast_precision(copy.deepcopy(base), (x, y), accelerator='cpu')
    runs = {'plain loop (NCHW float32)': lambda: plain_step_s(plain, plain_opt, x, y, a.steps),
            f"plain loop + channelslast.optimize ({ {torch.bfloat16: 'bf16', torch.float16: 'fp16'}.get(ours.channelslast['dtype'], 'float32')})": lambda: plain_step_s(ours, ours_opt, x, y, a.steps),
            "Lightning (precision='32-true')": (lambda lm: lambda: lightning_step_s(lm, loader, '32-true', []))(Classifier(copy.deepcopy(base))),
            f"Lightning + ChannelsLast (precision={precision!r})": (lambda lm: lambda: lightning_step_s(lm, loader, precision, [ChannelsLast()]))(Classifier(copy.deepcopy(base)))}
    times,names = {k: [] for k in runs},list(runs)
    for r in range(a.repeats + 1):  # the first round warms up
        for k in names[r % 4:] + names[:r % 4]:  # each round starts one further on: no loop always runs after the same one
            s = runs[k]()
            if r: times[k].append(32 / s)
    b = statistics.median(times['plain loop (NCHW float32)'])
    print(f"resnet50 96px batch 32, AdamW, training; {cpu_description()}; torch {torch.__version__}, lightning {pl.__version__}; "
          f"median of {a.repeats} rounds of {a.steps} steps (min-max)")
    if a.md: print('\n| loop | img/s | min-max | vs plain loop |\n|:--|--:|--:|--:|')
    for k,v in times.items():
        m = statistics.median(v)
        print(f"| {k} | {m:.1f} | {min(v):.1f}-{max(v):.1f} | {m/b:.2f}x |" if a.md else f"  {k:55s} {m:6.1f} img/s ({min(v):.1f}-{max(v):.1f})  {m/b:.2f}x")

if __name__ == '__main__': main()
