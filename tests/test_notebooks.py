"Every notebook in nbs/ runs without error, as nbdev runs it: the notebooks hold most of the tests"
from pathlib import Path

root = Path(__file__).parents[1]

def test_notebooks(docs_build):
    "The docs build ran each notebook once (conftest.py), stopping a notebook at its first failing cell"
    nbs = sorted(p.name for p in (root/'nbs').glob('*.ipynb'))
    assert {'00_core.ipynb', '01_amp.ipynb', '01a_auto.ipynb', '01b_compiling.ipynb', '01c_optim.ipynb', '01d_lean.ipynb', '01e_workload.ipynb', '01f_plain.ipynb', '02_callback.ipynb', '02a_checkpoint.ipynb', '02b_lightning.ipynb', '03_check.ipynb', '03a_profile.ipynb', '04_bench.ipynb', '05_cli.ipynb', '97_test_utils.ipynb', '99_all.ipynb', 'index.ipynb', 'survey.ipynb', 'tutorial.ipynb', 'benchmarks.ipynb'} <= set(nbs)
    assert docs_build.returncode == 0, docs_build.stdout[-3000:] + docs_build.stderr[-8000:]
    ran = {l.split()[1] for l in docs_build.stdout.splitlines() if l.startswith('ran ')}
    assert len(ran) == len(nbs), (ran, nbs)
