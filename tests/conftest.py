"""One run of every notebook serves two tests: the docs build executes each notebook as `nbdev-test` does. The browser
the docs test drives is installed here when a machine lacks it, so `pytest` alone passes on a fresh machine."""
import os, shutil, subprocess, sys, tempfile
from pathlib import Path
import pytest

root = Path(__file__).parents[1]

@pytest.fixture(scope='session', autouse=True)
def _temporary_files(tmp_path_factory):
    "Every temporary file the tests write, in this process and the ones it starts, under pytest's own temporary folder"
    # (pytest keeps its last 3 runs): the notebooks, CLIs, checkpoints and compile caches the tests make can't pile up
    tmp,was = tmp_path_factory.mktemp('tmp'),{k: os.environ.get(k) for k in ('TMPDIR', 'CHANNELSLAST_CACHE')}
    os.environ['TMPDIR'],tempfile.tempdir = str(tmp),None  # `tempfile` caches its folder: forget it
    os.environ['CHANNELSLAST_CACHE'] = str(tmp/'choices.json')  # the CPU choices the tests make, not the user's
    yield tmp
    for k,v in was.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    tempfile.tempdir = None

@pytest.fixture(scope='session')
def docs_build():
    "`python tools/docs.py --site`, run once per session: every notebook executed and rendered into `_docs/`"
    return subprocess.run([sys.executable, 'tools/docs.py', '--site'], cwd=root, capture_output=True, text=True)

def _apt(*args) -> subprocess.CompletedProcess:
    sudo = [] if os.geteuid() == 0 else ['sudo', '-n']  # -n: fail at once rather than wait for a password
    return subprocess.run([*sudo, 'apt-get', *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})

@pytest.fixture(scope='session')
def chromium() -> Path:
    "Debian's Chromium (the docs test's browser), installed with apt-get if this machine has none: no browser download"
    path = Path(shutil.which('chromium') or '/usr/bin/chromium')
    if not path.exists():
        res = _apt('install', '-y', '-q', 'chromium')
        if res.returncode: res = _apt('update', '-q'); res = _apt('install', '-y', '-q', 'chromium')  # stale package lists
        path = Path(shutil.which('chromium') or '/usr/bin/chromium')
        assert path.exists(), ("the docs test needs Debian's chromium, and `apt-get install chromium` failed "
                               f"(install it, then run pytest again): {(res.stderr or res.stdout)[-1500:]}")
    return path
