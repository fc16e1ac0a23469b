"The `channelslast` console script, run as a user runs it"
import subprocess, sys
from pathlib import Path

exe = Path(sys.executable).parent/'channelslast'
def run(*args): return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)

def test_check_ok():
    res = run('check', 'resnet10t', '--size', '32')
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith('resnet10t: OK'), res.stdout

def test_check_names_thrash_point():
    "tresnet's SpaceToDepth returns NCHW: the report names it"
    res = run('check', 'tresnet_m', '--size', '64')
    assert res.returncode == 0, res.stderr
    assert 'THRASHES' in res.stdout and 'body.s2d (SpaceToDepth)' in res.stdout, res.stdout

def test_check_torchvision():
    res = run('check', 'torchvision:resnet18', '--size', '32', '--bs', '2')
    assert res.returncode == 0 and 'torchvision:resnet18: OK' in res.stdout, res.stderr

def test_unknown_model_one_line():
    res = run('check', 'resnet5O', '--size', '32')
    assert res.returncode != 0
    assert 'Traceback' not in res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines[-1] == "channelslast check: unknown timm model 'resnet5O'; did you mean resnet50, resnet51q, resnet50t, resnet50s, resnet50d?", res.stderr
    assert not [l for l in lines if not l.startswith(('USDT:', 'channelslast check:'))], res.stderr

def test_bad_device_and_arguments():
    res = run('check', 'resnet10t', '--device', 'tpu9')
    assert res.returncode != 0 and "device 'tpu9' is not available here; valid: cpu" in res.stderr and 'Traceback' not in res.stderr
    res = run('check', 'resnet10t', '--bs', 'x')
    assert res.returncode == 2 and "argument --bs: invalid int value: 'x'" in res.stderr

def test_commands():
    res = run('chek', 'resnet10t')
    assert res.returncode == 2 and "unknown command 'chek'; valid: check" in res.stderr
    res = run()
    assert res.returncode == 2 and 'usage: channelslast {check}' in res.stdout
    res = run('check', '--help')
    assert res.returncode == 0 and '--size' in res.stdout and 'timm model name' in res.stdout
