"""What the CPU guard for oneDNN #6035 costs: seconds per training step of a model whose stem it guards, in NCHW,
in channels-last with the guard (the stem in NCHW, the rest channels-last), and in channels-last without it (which
may crash: each round of each config runs in a forked child, so a crash is counted, not fatal). Rounds are
interleaved; medians over rounds. Run: `python benchmarks/guard_cost.py [--model repvgg_a2] [--sizes 96 224]`."""
import argparse, statistics, sys, time, warnings
import torch  # imported before forking; no torch work runs in this (parent) process, so forking is safe
from conv_boundary import in_child  # beside this file

CONFIGS = ('NCHW', 'CL guarded', 'CL unguarded')

def steps(cfg, model_name, size, bs, n, q):
    "In the child: `n` timed SGD steps (after 2 warm-up steps) of `model_name` in `cfg`; the median step time into `q`"
    import timm
    from channelslast.core import model_to_channels_last, to_channels_last, guarded_layers
    warnings.simplefilter('ignore'); torch.manual_seed(0)
    m = timm.create_model(model_name, num_classes=10)
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, 10, (bs,))
    if cfg != 'NCHW': m, x = model_to_channels_last(m, guard=cfg == 'CL guarded'), to_channels_last(x)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    ts = []
    for i in range(n + 2):
        t = time.perf_counter()
        torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step(); opt.zero_grad()
        ts.append(time.perf_counter() - t)
    q.put((statistics.median(ts[2:]), len(guarded_layers(m))))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='repvgg_a2'); ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 224])
    ap.add_argument('--bs', type=int, default=8); ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--rounds', type=int, default=3)
    a = ap.parse_args()
    from channelslast.amp import cpu_description
    print(f"{a.model}, batch {a.bs}, {a.steps} timed SGD steps a round, {a.rounds} interleaved rounds, float32, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\nCPU: {cpu_description()}\n")
    print('| size | config | s/step (median) | min | max | vs NCHW | vs CL guarded | guarded layers | crashed rounds |')
    print('|---|---|---|---|---|---|---|---|---|')
    for size in a.sizes:
        res = {c: [] for c in CONFIGS}
        for r in range(a.rounds):
            for c in CONFIGS:
                res[c].append(in_child(steps, (c, a.model, size, a.bs, a.steps), timeout=600))
                print(f"size {size} round {r} {c}: {res[c][-1]}", file=sys.stderr, flush=True)
        ok = {c: [o[0] for o in rs if isinstance(o, tuple)] for c,rs in res.items()}
        med = {c: statistics.median(v) if v else float('nan') for c,v in ok.items()}
        for c in CONFIGS:
            g = next((o[1] for o in res[c] if isinstance(o, tuple)), '-')
            bad = [o for o in res[c] if not isinstance(o, tuple)]
            mn,mx = (f"{min(ok[c]):.3f}", f"{max(ok[c]):.3f}") if ok[c] else ('-', '-')
            print(f"| {size} | {c} | {med[c]:.3f} | {mn} | {mx} | {med['NCHW']/med[c]:.2f}x | {med['CL guarded']/med[c]:.2f}x | {g} | "
                  f"{len(bad)} of {a.rounds}{' (' + ', '.join(sorted(set(bad))) + ')' if bad else ''} |")
