"""Is PyTorch's float32 math in bf16 on oneDNN (`torch.backends.mkldnn.conv.fp32_precision = 'bf16'`, torch >= 2.9) a
candidate for the CPU rule? Float32 tensors and no autocast casts, bf16 inside oneDNN's convolutions: training steps
of a channels-last float32 model with it off and on, taking turns, beside autocast bf16, in one process.

    python benchmarks/mkldnn_bf16.py [--model resnet50] [--size 96] [--bs 32] [--steps 5] [--repeats 3]"""
import argparse, statistics, sys, time, warnings
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings('ignore')
import torch, timm
import torch.nn.functional as F
from channelslast.all import cpu_description

def step_seconds(model, opt, x, y, steps:int, autocast:bool) -> float:
    "Median seconds of `steps` training steps"
    ts = []
    for _ in range(steps):
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast): loss = F.cross_entropy(model(x), y)
        loss.backward(); opt.step(); opt.zero_grad(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='resnet50'); ap.add_argument('--size', type=int, default=96); ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--steps', type=int, default=5); ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    model = timm.create_model(a.model, num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x,y = torch.randn(a.bs, 3, a.size, a.size).to(memory_format=torch.channels_last),torch.randint(0, 10, (a.bs,))
    default = torch.backends.mkldnn.conv.fp32_precision
    configs = {'CL fp32': (default, False), "CL fp32, mkldnn fp32_precision='bf16'": ('bf16', False), 'CL bf16 (autocast)': (default, True)}
    times = {k: [] for k in configs}
    for r in range(a.repeats + 1):  # the first round warms up
        for k,(prec,ac) in configs.items():
            torch.backends.mkldnn.conv.fp32_precision = prec
            s = step_seconds(model, opt, x, y, a.steps, ac)
            if r: times[k].append(s)
    torch.backends.mkldnn.conv.fp32_precision = default
    print(f"{cpu_description()}; torch {torch.__version__}; {a.model} {a.size}px batch {a.bs}, channels-last, seconds a training step:")
    base = statistics.median(times['CL fp32'])
    for k,ts in times.items():
        print(f"  {k:40s} {statistics.median(ts):.3f} ({min(ts):.3f}-{max(ts):.3f})  {base / statistics.median(ts):.2f}x CL fp32")

if __name__ == '__main__': main()
