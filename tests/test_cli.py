"The `channelslast` console script, run as a user runs it"
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest

exe = Path(sys.executable).parent/'channelslast'
def run(*args, env=None): return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
def runs(*argss, envs=None) -> list:
    "`run` each argument list (with its environment in `envs`), a process per core at a time: each mostly waits for imports"
    with ThreadPoolExecutor(os.cpu_count()) as ex: return list(ex.map(lambda a,e: run(*a, env=e), argss, envs or [None]*len(argss)))

CHECKS = {  # name -> (arguments, environment) of every `check` run below, started together (`check_runs`)
    'bf16': (['resnet10t', '--size', '32'], {'CHANNELSLAST_CPU_BF16': '1'}),
    'no bf16': (['resnet10t', '--size', '32'], {'CHANNELSLAST_CPU_BF16': '0'}),
    'tresnet as it is': (['tresnet_m', '--size', '64', '--no-mend'], None),
    'tresnet': (['tresnet_m', '--size', '64'], None),
    'blur for cuda': (['resnetblur50', '--size', '32', '--target', 'cuda'], None),
    'blur for cuda, mend all': (['resnetblur50', '--size', '32', '--target', 'cuda', '--mend-all'], None),
    'repvgg': (['repvgg_a2', '--size', '96'], None),
    'gn for cuda': (['resnet50_gn', '--size', '32', '--target', 'cuda'], None),
    'gn for cuda, verbose': (['resnet50_gn', '--size', '32', '--target', 'cuda', '--verbose'], None),
    'torchvision': (['torchvision:resnet18', '--size', '32', '--bs', '2'], None),
    'typo': (['resnet5O', '--size', '32'], None),
}

@pytest.fixture(scope='module')
def check_runs() -> dict:
    "name -> result of each `check` of CHECKS, run side by side (`runs`)"
    return dict(zip(CHECKS, runs(*(['check', *a] for a,_ in CHECKS.values()), envs=[e for _,e in CHECKS.values()])))

@pytest.mark.parametrize('bf16', ['bf16', 'no bf16'])
def test_check_prints_only_its_report(check_runs, bf16):
    "On either kind of CPU (pretended with CHANNELSLAST_CPU_BF16), the report is the whole output: no profiler lines"
    res = check_runs[bf16]
    assert res.returncode == 0, res.stderr
    assert res.stderr == '', res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == 'resnet10t: OK: channels-last end to end', res.stdout
    assert lines[1].startswith('layout-changing copies: forward 0 (0.00 MB), backward '), res.stdout

def test_check_names_thrash_point(check_runs):
    "tresnet's SpaceToDepth returns NCHW as it is (--no-mend): the report names it; mended, it keeps the format"
    res = check_runs['tresnet as it is']
    assert res.returncode == 0, res.stderr
    assert 'THRASHES' in res.stdout and 'body.s2d (SpaceToDepth)' in res.stdout, res.stdout
    res = check_runs['tresnet']
    assert res.returncode == 0 and res.stdout.startswith('tresnet_m: OK') and 'mended: SpaceToDepth x1' in res.stdout, res.stdout

def test_check_target_cuda_mend_all(check_runs):
    "On a CPU, for CUDA: resnetblur50's BlurPool pads in a kernel CUDA runs in NCHW; --mend-all swaps in its NHWC version"
    res = check_runs['blur for cuda']
    assert res.returncode == 0 and 'THRASHES on cuda' in res.stdout and 'reflection_pad2d returns NCHW on cuda' in res.stdout, res.stdout
    res = check_runs['blur for cuda, mend all']
    assert res.returncode == 0 and res.stdout.startswith('resnetblur50: OK: channels-last end to end on cpu, and on cuda'), res.stdout
    assert 'mended: BlurPool2d x4 (on cuda)' in res.stdout, res.stdout

def test_check_names_guarded_layer(check_runs):
    "repvgg_a2's stem branch would crash PyTorch's CPU backward in channels-last: the check runs it guarded, and says so"
    res = check_runs['repvgg']
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert 'repvgg_a2: OK' in res.stdout and 'guarded on CPUs: 1 layer run in NCHW' in res.stdout, res.stdout
    assert '  stem.conv_1x1.conv (Conv2d)' in res.stdout and res.stderr == '', res.stdout + res.stderr

def test_check_fits_a_screen(check_runs):
    "resnet50_gn for CUDA: 53 GroupNorms in one line, the evidence once; --verbose names every one"
    short,full = check_runs['gn for cuda'],check_runs['gn for cuda, verbose']
    assert short.returncode == 0 and len(short.stdout.splitlines()) <= 40, short.stdout
    assert 'GroupNorm x53: native_group_norm returns NCHW on cuda: bn1, ' in short.stdout and short.stdout.count('#111824') == 1, short.stdout
    assert 'layer4.2.bn3' not in short.stdout and 'layer4.2.bn3' in full.stdout and full.stdout.count('#111824') == 1, full.stdout

def test_check_torchvision(check_runs):
    res = check_runs['torchvision']
    assert res.returncode == 0 and 'torchvision:resnet18: OK' in res.stdout, res.stderr

def test_unknown_model_one_line(check_runs):
    res = check_runs['typo']
    assert res.returncode != 0
    assert 'Traceback' not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines[-1] == "channelslast check: unknown timm model 'resnet5O'; did you mean resnet50, resnet51q, resnet50t, resnet50s, resnet50d?", res.stderr
    assert len(lines) == 1, res.stderr

def test_bad_device_and_arguments():
    res,bs = runs(['check', 'resnet10t', '--device', 'tpu9'], ['check', 'resnet10t', '--bs', 'x'])
    assert res.returncode != 0 and "device 'tpu9' is not available here; valid: cpu" in res.stderr and 'Traceback' not in res.stderr
    res = bs
    assert res.returncode == 2 and "argument --bs: invalid int value: 'x'" in res.stderr

def test_closed_pipe_no_traceback():
    "`channelslast check ... | head`: the reader gone before the report is written; a quiet exit, no traceback"
    p = subprocess.Popen([exe, 'check', 'tresnet_m', '--size', '64', '--no-mend'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # as `head` does once it has its lines
    err = p.stderr.read(); p.wait(timeout=300)
    assert 'Traceback' not in err and 'BrokenPipeError' not in err and p.returncode == 1, (p.returncode, err[-2000:])

def test_commands():
    chek,bare,res = runs(['chek', 'resnet10t'], [], ['check', '--help'])
    assert chek.returncode == 2 and "unknown command 'chek'; valid: bench, check" in chek.stderr
    assert bare.returncode == 2 and 'usage: channelslast {bench,check}' in bare.stdout
    assert res.returncode == 0 and '--size' in res.stdout and 'timm model name' in res.stdout

BENCH = {'train': ['--steps', '2', '--repeats', '1', '--bs', '32'], 'inference': ['--inference', '--steps', '2', '--repeats', '1'],
         'compiled': ['--inference', '--compile', '--steps', '2', '--repeats', '1', '--size', '16', '--bs', '16'],
         'profile': ['--profile', '--model', 'resnet50', '--size', '32', '--bs', '4', '--steps', '2']}

@pytest.fixture(scope='module')
def bench_runs(tmp_path_factory) -> dict:
    "name -> (result, --out folder) of the `bench` runs of BENCH, started together: none times anything the tests read"
    outs = {k: tmp_path_factory.mktemp(k) for k in BENCH}
    with ThreadPoolExecutor(len(BENCH)) as ex: res = list(ex.map(lambda k: run('bench', *BENCH[k], '--out', str(outs[k])), BENCH))
    return {k: (r, outs[k]) for k,r in zip(BENCH, res)}

def test_bench_end_to_end(bench_runs):
    res,tmp_path = bench_runs['train']
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(l.startswith('model resnet10t, size 32, bs 32') for l in lines), res.stdout
    assert any(l.startswith('cpu: ') and 'native bf16: ' in l for l in lines), res.stdout  # the figures name the CPU
    for cfg in ('NCHW fp32', 'NCHW AMP', 'CL fp32', 'CL AMP', 'fastai stock', 'ours'): assert any(l.strip().startswith(cfg) for l in lines), cfg
    # our default's row, and what it chose for this workload and why
    assert any(l.startswith('ours: `to_channelslast()` as it is, which chose ') and ' for this workload on this CPU (' in l for l in lines), res.stdout
    assert (tmp_path/'results.json').exists() and (tmp_path/'speed.png').stat().st_size > 1000
    assert len(lines) <= 40, res.stdout

def test_bench_profile(bench_runs):
    "--profile on a 50-layer model: each config's phases side by side, in a screen, with what to do about the main cost"
    res,tmp_path = bench_runs['profile']
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) <= 40 and any(l.startswith('model resnet50') and l.endswith('mode profile') for l in lines), res.stdout
    for ph in ('batch wait', 'forward', 'loss', 'backward', 'optimizer step', 'zero_grad', 'other', 'step', 'copies/step'):
        assert sum(l.startswith(ph) for l in lines) >= 1, (ph, res.stdout)
    assert any(l.startswith('fastest: ') and 'most of its step: ' in l for l in lines), res.stdout
    prof = json.loads((tmp_path/'results.json').read_text())['profile']
    for cfg,p in prof.items():
        total = sum(v for k,v in p['phases'].items() if k != 'step')
        assert abs(total - p['phases']['step']) < 0.1 * p['phases']['step'], (cfg, p['phases'])  # the phases add up to the step
    assert (tmp_path/'profile.png').stat().st_size > 1000

def test_bench_inference(bench_runs):
    "--inference times get_preds in every config and says how the predictions agree with NCHW fp32's"
    res,tmp_path = bench_runs['inference']
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(l.startswith('model resnet10t') and l.endswith('mode inference') for l in lines), res.stdout
    header = next(l for l in lines if l.strip().startswith('config'))
    assert 'top1 agree' in header and 'max |dp|' in header and 'accuracy' not in header, header
    row = next(l for l in lines if l.strip().startswith('CL fp32')).split()
    assert float(row[-2]) == 1.0 and float(row[-1]) < 1e-3, row  # channels-last predicts what NCHW does
    assert json.loads((tmp_path/'results.json').read_text())['mode'] == 'inference' and (tmp_path/'speed.png').exists()

def test_bench_inference_compiled(bench_runs):
    "--inference --compile: the compiled configs predict what the eager ones do; compiling's seconds are their own column"
    res,tmp_path = bench_runs['compiled']
    assert res.returncode == 0, res.stderr
    assert 'compile s' in next(l for l in res.stdout.splitlines() if l.strip().startswith('config')), res.stdout
    assert any(l.startswith('ChannelsLast(compile): compiling ResNet') for l in res.stdout.splitlines()), res.stdout  # it said so
    rows = {r['config']: r for r in json.loads((tmp_path/'results.json').read_text())['results']}
    compiled = {'NCHW AMP compiled', 'CL fp32 compiled', 'CL AMP compiled'}
    assert compiled <= set(rows), rows
    assert all((rows[k]['compile s'] > 0) == (k in compiled) for k in rows), rows  # seconds apart from img/s
    assert rows['CL fp32 compiled']['top1 agree'] == 1.0 and rows['CL fp32 compiled']['img/s'] > 0, rows  # the same function

def test_bench_bad_arguments_one_line_exit_2():
    cases = [(['--bs', 'x'], "argument --bs: invalid int value: 'x'"),
             (['--steps', '0'], '--steps 0 must be at least 1'),
             (['--data', 'nowhere'], "--data 'nowhere' is not a folder"),
             (['--amp-mode', 'fp8'], "amp_mode='fp8' is not a mixed precision mode"),
             (['--model', 'resnet5O'], "unknown timm model 'resnet5O'"),
             (['--device', 'tpu9'], "device 'tpu9' is not available here"),
             (['--nope'], 'unrecognized arguments: --nope')]
    for (args, msg), res in zip(cases, runs(*(['bench', *a] for a,_ in cases))):
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert len(lines) == 1 and msg in lines[0], (args, res.stderr)

def test_bench_on_an_image_folder(tmp_path):
    "--data PATH reads a folder the way ImageDataLoaders.from_folder does (train/ and valid/, one folder per class)"
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, n in (('train', 16), ('valid', 8)):
        for c in ('a', 'b', 'c'):
            (tmp_path/split/c).mkdir(parents=True)
            for i in range(n): Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path/split/c/f'{i}.png')
    res = run('bench', '--data', str(tmp_path), '--size', '16', '--bs', '8', '--steps', '2', '--repeats', '1')
    assert res.returncode == 0, res.stderr
    assert f'data {tmp_path}' in res.stdout and 'CL fp32' in res.stdout, res.stdout

def test_bad_input_one_line_exit_2(tmp_path):
    "Bad sizes and unreadable image folders: one line naming the bad value and what is valid, exit 2, before any training"
    import numpy as np
    from PIL import Image
    def images(folder, n=3):
        folder.mkdir(parents=True)
        for i in range(n): Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)).save(folder/f'{i}.png')
    for split in ('train', 'valid'):
        for c in ('a', 'b'): images(tmp_path/'split'/split/c)
    (tmp_path/'split'/'valid'/'b'/'bad.jpg').write_text('not an image')
    images(tmp_path/'flat')
    cases = [(['check', 'resnet18', '--size', '0'], "channelslast check: --size 0 is too small for resnet18: its downsampling "
                                                    "needs at least 1px; usable sizes for resnet18 at batch 2 on cpu here: 1 to "),
             (['check', 'resnet18', '--size', '-3'], "channelslast check: --size -3 is too small for resnet18"),
             (['check', 'resnet18', '--size', '100000'], "channelslast check: --size 100000 is too large for cpu here: resnet18 at "
                                                         "batch 2 needs about"),
             (['bench', '--size', '100000'], "channelslast bench: --size 100000 is too large for cpu here: resnet10t at batch 64"),
             (['bench', '--data', str(tmp_path/'split')], "1 of 13 image files can't be opened as images (valid/b/bad.jpg); remove them"),
             (['check', 'resnet18', '--no-mend', '--mend-all'], "channelslast check: --no-mend and --mend-all contradict each other: give one"),
             (['bench', '--data', str(tmp_path/'flat')], "found 3 image file(s) in 0 class folder(s); bench reads train/ and valid/, "
                                                         "each with one subfolder of images per class")]
    done = runs(*(a for a,_ in cases))
    for (args, msg), res in zip(cases, done):
        lines = [l for l in res.stderr.splitlines() if l.strip()]
        assert res.returncode == 2 and len(lines) == 1 and msg in lines[0], (args, res.returncode, res.stderr[-2000:])
        assert res.stdout == '', (args, res.stdout)  # nothing trained, nothing printed
    top = int(done[0].stderr.split(' to ')[-1].rstrip('px\n'))  # the `--size 0` case's range
    assert 100 < top < 100000, top  # a range that includes ordinary sizes and excludes the one that failed
