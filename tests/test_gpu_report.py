"The GPU report runs here in `--quick` mode (the CPU, tiny models), so the one command a lent GPU runs can't rot"
import json, subprocess, sys
from pathlib import Path
import pytest

root = Path(__file__).parents[1]
sys.path.insert(0, str(root/'benchmarks'))

@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_report')
    res = subprocess.run([sys.executable, 'benchmarks/gpu_report.py', '--quick', '--out', str(out)], cwd=root,
                         capture_output=True, text=True, timeout=900)
    return res,out

def test_quick_report_sections(quick):
    "Every section, under the headings a GPU run writes, and every step done"
    import gpu_report
    res,out = quick
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    md = (out/'gpu_report.md').read_text()
    assert [l[3:] for l in md.splitlines() if l.startswith('## ')] == [*gpu_report.SECTIONS, 'Steps']
    data = json.loads((out/'gpu_report.json').read_text())
    assert [s for s in data['steps'] if s['status'] != 'ok'] == []
    env = data['sections']['Environment']
    assert env['device'] == 'cpu' and env['torch'] and env['fastai'] and env['matmul_bf16_TFLOPs'] > 0

def test_quick_report_figures(quick):
    "Correctness all passes on this CPU; tables hold measured, positive figures; auto decided; the thrash survey ran, with its CUDA prediction"
    res,out = quick
    s = json.loads((out/'gpu_report.json').read_text())['sections']
    checks = s['CUDA correctness']['checks']
    assert len(checks) >= 11 and {c['result'] for c in checks} == {'pass'}, checks
    for model in ('resnet10t', 'mobilenetv3_small_050'):
        rows = {r['config']: r for r in s['Training throughput'][model]['rows']}
        assert {'NCHW fp32', 'CL fp16 (ours)', 'CL bf16 (ours)', 'fastai stock', 'auto (ours)'} <= set(rows)
        assert all(r['img/s'] > 0 and r['min'] <= r['img/s'] <= r['max'] for r in rows.values())
        inf = {r['config']: r for r in s['Inference throughput'][model]['rows']}
        assert inf['NCHW fp32']['top1 agree'] == 1 and inf['CL fp16 (ours)']['img/s'] > 0 and 'auto (ours)' not in inf
    assert all(r['GFLOP_per_img'] > 0 and r['TFLOPs'] > 0 for r in s['Utilisation']['rows'])
    mends = s['Mends']['rows']  # on a CPU: the one case whose op the CPU's kernel loses, InstanceNorm
    assert [r['case'] for r in mends] == ['InstanceNorm2d'] and mends[0]['native img/s'] > 0 and mends[0]['mended img/s'] > 0, mends
    m = mends[0]
    assert m['faster'] == (m['mended / native'] >= 1.05 and m['mended min'] > m['native img/s']) and m['mended min'] <= m['mended img/s']
    assert all(r['picked'] != 'None' and r['auto_vs_best'] > 0 for r in s['Auto']['rows'])  # the trial ended in the warm-up
    bd = {r['config']: r for r in s['Step breakdown']['rows']}  # each config's step, broken down; host syncs counted on CUDA only
    assert list(bd) == ['fastai stock', 'ours', "ours, fastai's Adam", 'ours, torch AdamW(fused)'], bd
    assert all(r['step'] > 0 and r['optimizer step'] > 0 and r['host_syncs'] is None and r['copies'] >= 1 for r in bd.values()), bd
    assert bd['ours']['optimizer_ops'] < bd["ours, fastai's Adam"]['optimizer_ops'] / 3 and bd['ours']['host_reads'] == 0 < bd['fastai stock']['host_reads']
    ep = {r['config']: r for r in s['Epochs']['rows']}  # a fastai epoch: fastai stock against ours, reads counted
    assert list(ep) == ['fastai stock', 'ours'] and all(r['img/s'] > 0 and r['min'] <= r['epoch s'] <= r['max'] for r in ep.values()), ep
    assert ep['fastai stock']['host reads/batch'] >= 1 and ep['ours']['host reads/batch'] <= 1/4, ep
    thrash = {r['model']: r for r in s['Thrash']['rows']}
    # mended, TResNet's SpaceToDepth keeps the format on the CPU; the kernel table says CUDA loses it at BlurPool's reflect pad
    assert thrash['tresnet_m']['cpu thrash'] == 0 and thrash['tresnet_m']['predicted (--target cuda)'] == 'BlurPool2d x3'

def test_step_failures_and_budget(tmp_path):
    "A step that raises is recorded with its error and the report goes on; one that the budget can't hold is skipped"
    import gpu_report
    rep = gpu_report.Report(tmp_path, budget=60)
    def boom(): raise RuntimeError('kaput')
    assert rep.step('Thrash', 'fails', boom) is None
    assert rep.step('Thrash', 'too long', lambda: 1, est=120) is None
    assert rep.step('Thrash', 'fine', lambda: 42) == 42
    test = [(r['step'], r['status']) for r in rep.steps]
    assert test == [('fails', 'failed'), ('too long', 'skipped'), ('fine', 'ok')]
    assert 'RuntimeError: kaput' in rep.steps[0]['error'] and 'time budget' in rep.steps[1]['error']
    md = (tmp_path/'gpu_report.md').read_text()
    assert '- fails: failed: RuntimeError: kaput' in md and '- too long: skipped' in md

def test_step_timeout(tmp_path):
    "A step still running when the budget ends is stopped and recorded, not left to run past it"
    import time, gpu_report
    rep = gpu_report.Report(tmp_path, budget=2)
    t = time.time()
    assert rep.step('Auto', 'sleeps', lambda: time.sleep(30)) is None
    assert time.time() - t < 10 and 'StepTimeout' in rep.steps[0]['error']
