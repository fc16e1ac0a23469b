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
