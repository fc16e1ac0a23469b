"""Every fastai workflow on a learner with `to_channelslast(compile=True)`, counting the graphs dynamo compiles in each.
Run by tests/test_compile.py in a subprocess (compiling runs a C++ compiler and can take the interpreter down):
`python compile_workflow.py OUT`; writes OUT/workflow.json. Float32 (no autocast), so eager and compiled losses compare."""
import json, logging, sys, warnings
from pathlib import Path
import torch, torch._dynamo.utils as dynamo_utils
from torch import nn
from fastai.vision.all import *
from channelslast.all import *
from channelslast.test_utils import colour_dls
warnings.filterwarnings('ignore')

out = Path(sys.argv[1])
limit_hits = []  # dynamo's warning when a function's graphs reach the recompile limit (it then runs eager)
class _Hits(logging.Handler):
    def emit(self, r): limit_hits.append(r.getMessage()[:200]) if 'recompile_limit' in r.getMessage() else None
logging.getLogger('torch._dynamo.convert_frame').addHandler(_Hits())
def graphs() -> int: return dynamo_utils.counters['stats']['unique_graphs']

def net():
    "A small body and head (two parameter groups, so `freeze` freezes the body, as `vision_learner`'s split does)"
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
    return nn.Sequential(body, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2)))

# 24 training images (4 batches of 6), 8 validation images (6, then a smaller last batch of 2)
dls = colour_dls(out/'data', bs=6)
def learner(**kw):
    return Learner(dls, net(), loss_func=CrossEntropyLossFlat(), splitter=lambda m: [params(m[0]), params(m[1])], path=out,
                   lr=1e-2).to_channelslast(use_amp=False, **kw)

class EpochGraphs(Callback):
    "Graphs compiled during each epoch"
    def __init__(self): self.per_epoch = []
    def before_epoch(self): self.g0 = graphs()
    def after_epoch(self): self.per_epoch.append(graphs() - self.g0)

def fit(learn, n):
    dls.rng.seed(0); torch.manual_seed(0)
    with learn.no_bar(), learn.no_logging(): learn.fit(n, cbs=(cb := EpochGraphs()))
    return cb.per_epoch

res,files = {},sorted((out/'data'/'valid').rglob('*.png'))
eager = learner(); fit(eager, 1)
learn = learner(compile=True)
count = lambda f: (g := graphs(), f(), graphs() - g)[-1]
res['fit 3 epochs (per epoch)'] = fit(learn, 3)
res['losses'] = [torch.stack(eager.recorder.losses).tolist(), torch.stack(learn.recorder.losses).tolist()[:len(eager.recorder.losses)]]
with learn.no_bar():
    res['get_preds'] = count(lambda: learn.get_preds())
    res['predict'] = count(lambda: learn.predict(files[0]))
    res['predict again'] = count(lambda: learn.predict(files[1]))
    res['tta'] = count(lambda: learn.tta(n=2))
res['fine_tune(1, freeze_epochs=1)'] = count(lambda: learn.fine_tune(1, freeze_epochs=1))
res['fit 1 more'] = count(lambda: fit(learn, 1))
res['compiled'] = learn.channels_last.compiler.compiled(learn.model)
res['class'] = type(learn.model).__name__
res['keys'] = list(learn.model.state_dict())[:2]
res['report'] = learn.channelslast_compiled().astype({'input': str}).to_dict('records')


# save, load, export and the deployed learner: compiled for serving (frozen on a CPU), its own predictions
learn.save('m')
fresh = learner(compile=True); fresh.load('m')
preds = learn.get_preds()[0]
res['load: same preds'] = bool(torch.allclose(fresh.get_preds()[0], preds, atol=1e-5))
learn.export('export.pkl')
# the CPU's fast precision, named: `to_channelslast()` alone would let the workload choose at the first training batch
fast = dict(amp_mode='bf16') if default_amp_mode('cpu') else dict(use_amp=False)
sd = load_learner(out/'export.pkl', cpu=True).to_channelslast(compile=True, **fast); sd.get_preds(dl=dls.valid)
res['served default'] = sd.channels_last.compiler.variant
frozen = {'options': {'freezing': True}}  # asked for: freezing is on by default on no device yet
served = load_learner(out/'export.pkl', cpu=True).to_channelslast(compile=frozen, **fast)
served_preds = served.get_preds(dl=dls.valid)[0]
eager_served = load_learner(out/'export.pkl', cpu=True).to_channelslast(**fast).get_preds(dl=dls.valid)[0]  # the same precision, eager
res['served'] = dict(variant=served.channels_last.compiler.variant, graphs=len(served.channelslast_compiled()),
                     same_top1=bool((served_preds.argmax(1) == eager_served.argmax(1)).all()),
                     max_diff=float((served_preds - eager_served).abs().max()))
# a second deployed learner of the same architecture, other weights: its own predictions, not the first one's
other = learner(compile=True); fit(other, 1); other.export('other.pkl')
served2 = load_learner(out/'other.pkl', cpu=True).to_channelslast(compile=frozen, **fast)
eager2 = load_learner(out/'other.pkl', cpu=True).to_channelslast(**fast)
res['second served: own preds'] = bool(torch.allclose(served2.get_preds(dl=dls.valid)[0], eager2.get_preds(dl=dls.valid)[0], atol=1e-5))
# loading other weights into a frozen learner: the frozen graphs go, the new weights predict
other.save('other_w'); served.path = out; served.load('other_w')
res['frozen then load: new weights'] = bool(torch.allclose(served.get_preds(dl=dls.valid)[0], eager2.get_preds(dl=dls.valid)[0], atol=1e-5))
# training a served learner compiles it again, unfrozen
served.dls = dls; fit(served, 1)
res['served then fit'] = [served.channels_last.compiler.variant, served.channels_last.compiler.used]
served.to_contiguous()
res['to_contiguous'] = served.model._compiled_call_impl is None and not model_is_channels_last(served.model)
res['recompile limit hit'] = limit_hits
(out/'workflow.json').write_text(json.dumps(res, default=str))
