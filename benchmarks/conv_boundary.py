"""Where does a channels-last convolution's backward crash, hang or compute wrong weight gradients on this CPU?

oneDNN issue #6035: the backward-weights of a 1x1 convolution with an NHWC source and stride > 1 writes past its
scratch workspace when the input channels are below oneDNN's channel block. Each case below runs in a forked child
with a time limit (a segfault is an exit code, a hang a time-out), once in channels-last and once in NCHW on the
same data, and compares the weight gradients. Run: `python benchmarks/conv_boundary.py [--quick] [--json FILE]`.
Prints a summary per factor (the values seen failing in any case, and those never seen failing), then every case."""
import argparse, itertools, json, multiprocessing as mp, os, signal, sys
import torch  # imported before forking; no torch work runs in this (parent) process, so forking is safe

BASE = dict(dim=2, cin=3, cout=64, k=1, stride=2, pad=0, dil=1, groups=1, size=96, batch=2, dtype='fp32', bias=True,
            cl_input=True, cl_weight=True)

def run_case(c:dict, q):
    "In the child: backward in channels-last and in NCHW on the same data; put the relative weight-grad error in `q`"
    torch.manual_seed(0); torch.set_num_threads(2)
    conv = (torch.nn.Conv2d if c['dim'] == 2 else torch.nn.Conv3d)(c['cin'], c['cout'], c['k'], stride=c['stride'],
            padding=c['pad'], dilation=c['dil'], groups=c['groups'], bias=c['bias'])
    shape = (c['batch'], c['cin']) + (c['size'],) * c['dim']
    x = torch.randn(shape)
    fmt = torch.channels_last if c['dim'] == 2 else torch.channels_last_3d
    dt = torch.bfloat16 if c['dtype'] == 'bf16' else None
    def grad(cl):
        m = type(conv)(c['cin'], c['cout'], c['k'], stride=c['stride'], padding=c['pad'], dilation=c['dil'],
                       groups=c['groups'], bias=c['bias'])
        m.load_state_dict(conv.state_dict())
        if cl and c['cl_weight']: m = m.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt) if cl and c['cl_input'] else x.clone()
        with torch.autocast('cpu', dtype=dt or torch.bfloat16, enabled=dt is not None): y = m(xi)
        y.float().square().mean().backward()
        return m.weight.grad.float()
    ref = grad(False)
    g = grad(True)
    q.put(float((g - ref).abs().max() / ref.abs().max().clamp_min(1e-12)))

def in_child(target, args:tuple, timeout:float):
    "`target(*args, q)` in a forked child: what it put in `q`, or 'hang' (killed at `timeout`) or 'crash (SIGNAL)'"
    ctx = mp.get_context('fork'); q = ctx.SimpleQueue()
    p = ctx.Process(target=target, args=(*args, q)); p.start(); p.join(timeout)
    if p.is_alive(): os.kill(p.pid, signal.SIGKILL); p.join(); return 'hang'
    if p.exitcode: return f"crash ({signal.Signals(-p.exitcode).name if p.exitcode < 0 else f'exit {p.exitcode}'})"
    return q.get()

def outcome(c:dict, timeout:float=10., tol:dict={'fp32': 1e-4, 'bf16': 2e-2}) -> str:
    "ok, wrong (weight grad off by more than `tol`), crash (signal or exit code) or hang"
    err = in_child(run_case, (c,), timeout)
    if isinstance(err, str): return err
    return 'ok' if err <= tol[c['dtype']] else f"wrong ({err:.1e})"

def cases(quick:bool):
    "The base case (RepVGG's stem), one factor changed at a time, and a grid of input channels x kernel x stride"
    one_at_a_time = dict(cin=[1, 2, 4, 8, 12, 15, 16, 17, 24, 31, 32, 48], cout=[8, 16, 32], k=[2, 3], stride=[1, 3, 4],
                         pad=[1], dil=[2], size=[16, 32, 48, 64, 95, 97, 128, 224], batch=[1, 4, 8], dtype=['bf16'],
                         bias=[False], cl_input=[False], cl_weight=[False], dim=[3])
    yield dict(BASE)
    for k,vs in one_at_a_time.items():
        for v in vs:
            c = dict(BASE, **{k: v})
            if k == 'dim': c['size'] = 16
            yield c
    yield dict(BASE, cin=8, groups=8, cout=64)  # depthwise-like grouped 1x1
    if quick: return
    for size,cin,k,stride in itertools.product([64, 96, 128], [1, 2, 3, 4, 6, 8, 15, 16, 17, 20, 32, 33], [1, 3], [1, 2, 3]):
        yield dict(BASE, cin=cin, k=k, stride=stride, size=size)
    for cin,pad in itertools.product([3, 8, 16], [0, 1]): yield dict(BASE, cin=cin, k=1, stride=2, pad=pad, dtype='bf16')

def summary(rows:list) -> str:
    "Per factor: the values with a case that failed (crash, hang or wrong gradient), and those whose cases all passed"
    lines = ['| factor | failed in some case | never failed |', '|---|---|---|']
    for k in BASE:
        vals = {}
        for r in rows: vals.setdefault(r['case'][k], []).append(r['result'])
        bad = [v for v,rs in vals.items() if any(o != 'ok' for o in rs)]
        good = [v for v,rs in vals.items() if all(o == 'ok' for o in rs)]
        if len(vals) > 1: lines.append(f"| {k} | {', '.join(map(str, sorted(bad)))} | {', '.join(map(str, sorted(good)))} |")
    kinds = sorted({r['result'].split(' (')[0] + (' ' + r['result'].split(' (')[1].rstrip(')') if r['result'].startswith('crash') else '')
                    for r in rows if r['result'] != 'ok'})
    return '\n'.join(lines) + f"\n\noutcomes seen: {', '.join(kinds) or 'none'}"

def describe(c:dict) -> str:
    return ', '.join(f"{k}={v}" for k,v in c.items() if v != BASE[k] or k in ('cin', 'k', 'stride'))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='the base case and one factor at a time only')
    ap.add_argument('--json', help='write every case and its outcome here')
    ap.add_argument('--repeats', type=int, default=2, help='runs of each case (heap corruption need not crash every time)')
    args = ap.parse_args()
    rows = []
    for c in cases(args.quick):
        outs = [outcome(c) for _ in range(args.repeats)]
        bad = [o for o in outs if o != 'ok']
        rows.append(dict(case=c, outcomes=outs, result=bad[0] if bad else 'ok'))
        print(f"{rows[-1]['result']:>18}  {describe(c)}", file=sys.stderr, flush=True)
    from channelslast.amp import cpu_description
    print(f"torch {torch.__version__}, {cpu_description()}, {len(rows)} cases x {args.repeats} runs\n")
    print(summary(rows) + '\n')
    print('| case | result |\n|---|---|')
    for r in rows: print(f"| {describe(r['case'])} | {r['result']} |")
    if args.json: json.dump(dict(torch=torch.__version__, cpu=cpu_description(), rows=rows), open(args.json, 'w'), indent=1)
