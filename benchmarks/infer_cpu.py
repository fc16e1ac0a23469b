"""CPU inference of a deployed learner, measured: `benchmark(inference=True)` (get_preds in each memory format and
precision, on the same batches), then the deployment path itself: an exported learner loaded with
`load_learner(fname, cpu=True)` against the same plus `.to_channelslast()`, timing `get_preds` on 32 images and the
latency of `predict` on one, in interleaved rounds (medians), and the same with `.to_channelslast(compile=True)`
(`torch.compile` in place) and with inductor's weight freezing asked for (`compile={'options': {'freezing': True}}`). The model is untrained (random weights): its
predictions are near-ties, so agreement figures here are a worst case. Run: `python benchmarks/infer_cpu.py --md`."""
import argparse, statistics, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, timm
from PIL import Image
from fastai.vision.all import ImageDataLoaders, Resize, Learner, load_learner, CrossEntropyLossFlat
from channelslast.all import *
warnings.filterwarnings('ignore')

def image_folder(path:Path, n:int, size:int) -> Path:
    "`n` random RGB PNGs of `size`px in each of train/ and valid/, two classes"
    rng = np.random.default_rng(0)
    for split in ('train', 'valid'):
        for c in ('a', 'b'):
            (path/split/c).mkdir(parents=True, exist_ok=True)
            for i in range(n // 2): Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path/split/c/f'{i}.png')
    return path

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def deployment(model:str, size:int, n:int, rounds:int, predicts:int) -> pd.DataFrame:
    "get_preds on `n` images and predict latency: load_learner(cpu=True) plain vs with .to_channelslast()"
    path = image_folder(Path(tempfile.mkdtemp()), n, size)
    dls = ImageDataLoaders.from_folder(path, item_tfms=Resize(size), bs=16, num_workers=0)
    Learner(dls, timm.create_model(model, num_classes=2), loss_func=CrossEntropyLossFlat()).to_channelslast().export(path/'export.pkl')
    learns = {'load_learner(cpu=True)': load_learner(path/'export.pkl', cpu=True),
              'load_learner(cpu=True).to_channelslast()': load_learner(path/'export.pkl', cpu=True).to_channelslast()}
    # compiled at the first call, in the warm-up round
    learns['... .to_channelslast(compile=True)'] = load_learner(path/'export.pkl', cpu=True).to_channelslast(compile=True)
    learns['... compile, freezing'] = load_learner(path/'export.pkl', cpu=True).to_channelslast(compile={'options': {'freezing': True}})
    files = sorted((path/'valid').rglob('*.png'))[:n]
    preds,gp,pr = {},{k: [] for k in learns},{k: [] for k in learns}
    for r in range(rounds + 1):  # round 0: warm-up (and compilation)
        for k,l in learns.items():
            dl = l.dls.test_dl(files, bs=16)
            with l.no_bar():
                t = timed(lambda: preds.__setitem__(k, l.get_preds(dl=dl)[0]))
                ps = [timed(lambda: l.predict(files[i % n])) for i in range(predicts)]
            if r: gp[k].append(t); pr[k] += ps
    ref = preds['load_learner(cpu=True)']
    rows = [dict(learner=k, **{f'get_preds {n} img (s)': statistics.median(gp[k]), 'img/s': n / statistics.median(gp[k]),
                               'predict 1 img (ms)': 1000 * statistics.median(pr[k]),
                               'top1 agree': float((preds[k].argmax(1) == ref.argmax(1)).float().mean())}) for k in learns]
    df = pd.DataFrame(rows)
    df.insert(3, 'speedup', df['img/s'] / df['img/s'][0])
    df.insert(5, 'predict speedup', df['predict 1 img (ms)'][0] / df['predict 1 img (ms)'])
    return df

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='resnet50'); ap.add_argument('--size', type=int, default=224)
    ap.add_argument('--bs', type=int, default=16); ap.add_argument('--steps', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--images', type=int, default=32)
    ap.add_argument('--predicts', type=int, default=5, help='predict calls per round and learner')
    ap.add_argument('--md', action='store_true', help='markdown tables')
    a = ap.parse_args()
    torch.manual_seed(0)
    show = (lambda df: df.to_markdown(index=False, floatfmt='.3f')) if a.md else (lambda df: df.round(3).to_string(index=False))
    print(f"{a.model}, {a.size}px, torch {torch.__version__}, {torch.get_num_threads()} threads\nCPU: {cpu_description()}\n")
    dls = synthetic_dls(size=a.size, bs=a.bs, n=5 * a.bs * a.steps)  # a validation set of `steps` batches
    df = benchmark(lambda: timm.create_model(a.model, num_classes=10), dls, steps=a.steps, repeats=a.repeats, inference=True)
    print(f"get_preds, batch {a.bs}, {a.steps} batches a round, {a.repeats} rounds after a warm-up (img/s: median, min, max)")
    print(show(df) + '\n')
    print(f"deployment: an exported learner, {a.images} images from disk, {a.repeats} rounds after a warm-up, {a.predicts} predict calls a round")
    print(show(deployment(a.model, a.size, a.images, a.repeats, a.predicts)))
