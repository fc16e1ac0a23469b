"""Where a channels-last training step goes on this CPU: fastai stock, ours (the fused twin of fastai's Adam), ours with fastai's Adam, ours with torch's fused AdamW.

    python benchmarks/profile_cpu.py --md    # resnet50, 96px, batch 32, on the digits: about 2 minutes on 2 cores

`Learner.channelslast_profile` of each of `gpu_report.optimizer_configs` (ours: `to_channelslast()`, bf16 on a CPU
with native bf16), profiled one after the other (each its median of `--steps` steps): the tables the profile page and
RESULTS.md show, and the copies torch's fused AdamW makes inside its kernel."""
import argparse, sys, warnings
from pathlib import Path
import pandas as pd
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parent)]
warnings.filterwarnings('ignore')
import timm, torch
from channelslast.all import *
from gpu_report import optimizer_configs

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='resnet50'); ap.add_argument('--size', type=int, default=96)
    ap.add_argument('--bs', type=int, default=32); ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--md', action='store_true', help='Markdown tables')
    a = ap.parse_args()
    profs = profile_configs(lambda: timm.create_model(a.model, num_classes=10), digits_dls(size=a.size, bs=a.bs), n_steps=a.steps,
                            configs=optimizer_configs())
    print(f"{a.model}, {a.size}px, batch {a.bs}, `to_channelslast()`, median of {a.steps} steps; torch {torch.__version__}; {cpu_description()}\n")
    for k,p in profs.items():
        print(f"{k}:\n")
        df = p.reset_index().round(3)
        print(df.to_markdown(index=False) if a.md else df.to_string(index=False))
        print('\n' + profile_summary(p) + '\n')
    pt = profile_table(profs)
    print(pt.round(1).to_markdown() if a.md else pt.round(1).to_string())
    for k in list(profs)[1:]:
        print(f"\n{k} against {list(profs)[0]}: step {pt.loc['step'].iloc[0] / pt.loc['step', k]:.2f}x faster; optimizer step "
              f"{pt.loc['optimizer step'].iloc[0]:.1f} -> {pt.loc['optimizer step', k]:.1f} ms, backward {pt.loc['backward'].iloc[0]:.0f} -> "
              f"{pt.loc['backward', k]:.0f} ms, copies {pt.loc['copies/step'].iloc[0]:.0f} -> {pt.loc['copies/step', k]:.0f}")

if __name__ == '__main__': main()
