"""The docs site in a real browser, and the README it generates.

Builds the site with the documented command (once, shared with tests/test_notebooks.py: see conftest.py), serves
`_docs/` on localhost, opens every page in headless Chromium (Debian's `chromium`, driven by playwright) and checks: the page loads, nothing is logged to the console as an error,
nothing is fetched from outside the site, every image is drawn, and every link inside the site reaches a page (and
the anchor on it). A screenshot of each page goes to `_screenshots/`. Links to other sites (fastai, PyTorch docs)
can't be followed offline: they are counted, not checked."""
import functools, importlib.util, re, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlparse
import pytest

root = Path(__file__).parents[1]
site_dir,shots = root/'_docs',root/'_screenshots'
# as Chromium runs on a machine with no network: no background connections to Google's services
chromium_args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']

def _docs_module():
    spec = importlib.util.spec_from_file_location('docs', root/'tools'/'docs.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

def test_readme_is_generated_from_index():
    want = _docs_module().readme_text()
    assert (root/'README.md').read_text() == want, "README.md is stale: run `python tools/docs.py --readme` and commit it"
    for must in ('pip install', 'channelslast bench', 'pytest', 'to_channelslast()', 'python tools/docs.py'): assert must in want
    assert '#| hide' not in want and 'synth_learner' not in want  # the index's test cells are not in the README
    for link in re.findall(r'\]\((nbs/[\w-]+\.ipynb)\)', want): assert (root/link).exists(), link

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope='module')
def site(docs_build):
    assert docs_build.returncode == 0, docs_build.stdout[-3000:] + docs_build.stderr[-5000:]
    srv = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(site_dir)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_port}/'
    srv.shutdown()

def _ids(html:str) -> set: return set(re.findall(r'\sid="([^"]+)"', html))

def test_site_in_chromium(site, chromium):
    from playwright.sync_api import sync_playwright
    docs = _docs_module()
    names = [docs.page_name(f) for f in docs.notebooks()]
    assert {'index.html', 'tutorial.html', 'core.html', 'callback.html', 'auto.html', 'compiling.html', 'checkpoint.html', 'profile.html', 'bench.html', 'survey.html', 'benchmarks.html'} <= set(names)
    assert sorted(p.name for p in site_dir.glob('*.html')) == sorted(names)  # a page for every notebook, nothing else
    ids = {n: _ids((site_dir/n).read_text()) for n in names}
    shots.mkdir(exist_ok=True)
    external,checked = set(),0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=chromium_args)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        errors,requests = [],[]
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.on('request', lambda r: requests.append(r.url))
        for name in names:
            errors.clear(); requests.clear()
            resp = page.goto(site + name, wait_until='load')
            assert resp.ok, (name, resp.status)
            assert errors == [], (name, errors)
            assert all(u.startswith((site, 'data:')) for u in requests), (name, [u for u in requests if not u.startswith(site)])
            # the sidebar links every page, and marks this one
            assert page.eval_on_selector_all('nav.sidebar li a', 'els => els.map(e => e.getAttribute("href"))') == names
            assert page.eval_on_selector('nav.sidebar a.active', 'e => e.getAttribute("href")') == name
            # nbdev reads a page's description from one `> ` line: a second line would be cut off
            assert page.inner_text('header .description').endswith('.'), (name, page.inner_text('header'))
            imgs = page.eval_on_selector_all('main img', 'els => els.map(e => [e.src.slice(0, 40), e.complete && e.naturalWidth > 0])')
            assert all(ok for _,ok in imgs), (name, imgs)
            for href in page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)'):
                if not href.startswith(site):
                    if urlparse(href).scheme in ('http', 'https'): external.add(href)
                    continue
                target,frag = urldefrag(href)
                target = target[len(site):] or 'index.html'
                assert target in ids, f"{name}: broken link {href}"
                assert not frag or frag in ids[target], f"{name}: no #{frag} in {target} ({href})"
                checked += 1
            page.screenshot(path=shots/name.replace('.html', '.png'))
            if name == 'tutorial.html': assert len(imgs) >= 2, imgs  # the digits and the `channelslast bench` chart
            if name == 'callback.html':  # `show_doc` signatures, with the anchors nbdev links to
                assert page.locator('h3#channelslast').count() == 1 and 'trial_steps' in page.inner_text('main')
        browser.close()
    assert checked > 50, checked
    print(f"{len(names)} pages, {checked} links inside the site checked, {len(external)} links to other sites not followed")
