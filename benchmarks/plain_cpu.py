"""A plain PyTorch loop as it is against the same loop after `channelslast.optimize`, side by side in one process:
training steps (timm resnet50 at 96px, batch 32, AdamW), serving (resnet50 at 224px, batch 16) and torch's AdamW step
alone on the channels-last weights, its own against the fused one `optimize` switches it to; medians of `--repeats`
interleaved rounds, the order turning each round.

    python benchmarks/plain_cpu.py [--repeats 3]"""
import argparse, copy, statistics, sys, time, warnings
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import torch, timm
import torch.nn.functional as F
import channelslast, channelslast.plain
from channelslast.all import cpu_description

def train_ips(model, opt, x, y, steps:int) -> float:
    "img/s of `steps` training steps in the loop a user writes (autocast from `channelslast.autocast`: nothing if not optimized)"
    t = time.perf_counter()
    for _ in range(steps):
        with channelslast.autocast(model): loss = F.cross_entropy(model(x), y)
        loss.backward(); opt.step(); opt.zero_grad()
    return steps * len(x) / (time.perf_counter() - t)

def serve_ips(model, x, steps:int) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        for _ in range(steps):
            with channelslast.autocast(model): model(x)
    return steps * len(x) / (time.perf_counter() - t)

def turn(names:list, r:int) -> list:
    "`names` starting one further on each round `r`: no configuration always runs right after the same one"
    return names[r % len(names):] + names[:r % len(names)]

def table(times:dict, base:str) -> str:
    b = statistics.median(times[base])
    return '\n'.join(f"  {k:40s} {statistics.median(v):7.1f} img/s ({min(v):.1f}-{max(v):.1f})  {statistics.median(v) / b:.2f}x" for k,v in times.items())

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0]); ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--steps', type=int, default=4)
    a = ap.parse_args()
    print(f"{cpu_description()}; torch {torch.__version__}")
    torch.manual_seed(0)
    base = timm.create_model('resnet50', num_classes=10)
    plain = copy.deepcopy(base); ours = copy.deepcopy(base)
    opts = {'plain': torch.optim.AdamW(plain.parameters(), lr=1e-3)}
    ours, opts['ours'] = channelslast.optimize(ours, torch.optim.AdamW(ours.parameters(), lr=1e-3))
    models = {'plain loop (NCHW float32)': (plain, opts['plain']), 'channelslast.optimize': (ours, opts['ours'])}
    x,y = torch.randn(32, 3, 96, 96),torch.randint(0, 10, (32,))
    times = {k: [] for k in models}
    for r in range(a.repeats + 1):  # the first round warms up
        for k in turn(list(models), r):
            ips = train_ips(*models[k], x, y, a.steps)
            if r: times[k].append(ips)
    print(f"training resnet50 96px batch 32, AdamW ({ours.channelslast['dtype'] or 'float32'} chosen, fused step: {ours.channelslast['fused']}):")
    print(table(times, 'plain loop (NCHW float32)'))
    served = {'plain eval (NCHW float32)': copy.deepcopy(base).eval(), 'channelslast.optimize(model)': channelslast.optimize(copy.deepcopy(base)),
              'channelslast.optimize(model, compile=True)': channelslast.optimize(copy.deepcopy(base), compile=True)}
    x = torch.randn(16, 3, 224, 224)
    times = {k: [] for k in served}
    for r in range(a.repeats + 1):
        for k in turn(list(served), r):
            ips = serve_ips(served[k], x, a.steps)
            if r: times[k].append(ips)
    print("serving resnet50 224px batch 16:")
    print(table(times, 'plain eval (NCHW float32)'))
    print("torch's AdamW step on resnet50's channels-last weights (ms, lower is faster):")
    print(step_table(a.repeats))

def step_table(repeats:int) -> str:
    "ms of one AdamW step, torch's default (for-loop on a CPU) against the fused one `fuse_torch_optimizer` switches to"
    m = channelslast.plain.set_format(timm.create_model('resnet50'))
    for p in m.parameters(): p.grad = torch.randn_like(p)
    opts = {'AdamW as torch makes it': torch.optim.AdamW(m.parameters(), lr=1e-3), 'AdamW fused (optimize)': torch.optim.AdamW(m.parameters(), lr=1e-3)}
    channelslast.plain.fuse_torch_optimizer(opts['AdamW fused (optimize)'])
    times = {k: [] for k in opts}
    for r in range(3*repeats + 1):
        for k in turn(list(opts), r):
            o = opts[k]
            t = time.perf_counter(); o.step(); t = time.perf_counter() - t
            if r: times[k].append(t * 1e3)
    b = statistics.median(times['AdamW as torch makes it'])
    return '\n'.join(f"  {k:40s} {statistics.median(v):7.1f} ms ({min(v):.1f}-{max(v):.1f})  {b / statistics.median(v):.2f}x" for k,v in times.items())

if __name__ == '__main__': main()
