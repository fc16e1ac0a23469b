"Run every notebook in nbs/ as nbdev does: the notebooks hold most of the tests"
import subprocess, sys
from pathlib import Path

root = Path(__file__).parents[1]

def test_notebooks():
    nbs = sorted(p.name for p in (root/'nbs').glob('*.ipynb'))
    assert {'00_core.ipynb', '01_amp.ipynb', '02_callback.ipynb', '03_check.ipynb', '04_bench.ipynb', '05_cli.ipynb', '99_all.ipynb', 'index.ipynb', 'survey.ipynb', 'tutorial.ipynb', 'benchmarks.ipynb'} <= set(nbs)
    res = subprocess.run([Path(sys.executable).parent/'nbdev-test', '--n-workers', '2'], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0 and 'Success' in res.stdout + res.stderr, res.stdout + res.stderr
