"settings.ini is the legacy view of pyproject.toml: they must agree, and agree with the installed package"
import configparser, tomllib
from importlib.metadata import version
from pathlib import Path
import channelslast

root = Path(__file__).parents[1]
proj = tomllib.loads((root/'pyproject.toml').read_text())
nbdev = proj['tool']['nbdev']
ini = configparser.ConfigParser(); ini.read(root/'settings.ini')
ini = ini['DEFAULT']

def test_name_and_version():
    assert ini['lib_name'] == ini['repo'] == proj['project']['name']
    assert ini['version'] == channelslast.__version__ == version('channelslast')

def test_paths_and_flags():
    for k in ('lib_path', 'nbs_path', 'doc_path', 'tst_flags'): assert ini[k] == nbdev[k], k

def test_requirements():
    assert ini['requirements'].split() == proj['project']['dependencies']
    assert ini['dev_requirements'].split() == proj['project']['optional-dependencies']['dev']
    assert '>=' + ini['min_python'] == proj['project']['requires-python']

def test_description_and_urls():
    assert ini['description'] == proj['project']['description']
    assert ini['git_url'] == proj['project']['urls']['Repository']
    assert ini['doc_host'] + ini['doc_baseurl'] == proj['project']['urls']['Documentation']

def test_runtime_imports_are_dependencies():
    """Every package the library imports is a runtime dependency, or one that fastai declares (a plain install has no dev
    extra); an optional extra's packages (`lightning`) only in the module named for it, which says how to install them"""
    import ast, re, sys
    from importlib.metadata import packages_distributions, requires
    name = lambda req: re.split(r'[\s<>=!~;\[]', req, maxsplit=1)[0].lower().replace('_', '-')
    declared = {name(r) for r in proj['project']['dependencies']}
    declared |= {name(r) for r in requires('fastai') if 'extra ==' not in r}
    extras = {k: {name(r) for r in v} for k,v in proj['project']['optional-dependencies'].items() if k != 'dev'}
    assert extras == {'lightning': {'lightning'}}
    # and what they install (`lightning` brings `pytorch-lightning`, which holds `pytorch_lightning` and `lightning_fabric`)
    extras = {k: v | {name(r) for p in v for r in requires(p) or [] if 'extra ==' not in r} for k,v in extras.items()}
    dists = packages_distributions()
    seen,missing = set(),set()
    for f in (root/'channelslast').glob('*.py'):
        imported = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import): imported |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: imported.add(node.module.split('.')[0])
        third_party = imported - set(sys.stdlib_module_names) - {'channelslast'}
        ok = declared | extras.get(f.stem, set())
        missing |= {f"{m} (in {f.name})" for m in third_party if not {name(d) for d in dists.get(m, [m])} & ok}
        seen |= third_party
    assert {'torch', 'fastai', 'psutil', 'sklearn', 'lightning'} <= seen, seen  # the scan sees the imports
    assert not missing, f"imported at run time but not a dependency: {missing}"
