"One run of every notebook serves two tests: the docs build executes each notebook as `nbdev-test` does"
import subprocess, sys
from pathlib import Path
import pytest

root = Path(__file__).parents[1]

@pytest.fixture(scope='session')
def docs_build():
    "`python tools/docs.py --site`, run once per session: every notebook executed and rendered into `_docs/`"
    return subprocess.run([sys.executable, 'tools/docs.py', '--site'], cwd=root, capture_output=True, text=True)
