"""Build the docs site offline, and README.md from nbs/index.ipynb.

Every notebook in nbs/ is executed once, as `nbdev-test` runs it (`IN_TEST=1`, `#| cuda` and `#| slow` cells skipped,
the first failing cell fails it), so this build is also the notebook test: `tests/test_notebooks.py` asserts it.
A page shows the outputs of that run, except for notebooks that hold outputs in the file (the survey and the
tutorial keep those of the run that made them, which name the CPU they came from): these are run all the same, and
their stored outputs are shown. Then nbdev's docs processors (`show_doc`, `#| hide`, links) and nbconvert render each
to `_docs/NAME.html`, plots as images, with a sidebar linking every page. No Quarto and no network: pages load
nothing from outside `_docs/`.

Run: `python tools/docs.py` (site and README), `--readme` (README only) or `--site` (site only)."""
import html, json, os, re, subprocess, sys, tempfile, time, warnings
import nbformat
from pathlib import Path
from fastcore.nbio import dict2nb, nb2dict, read_nb
from fastcore.parallel import parallel
from fastcore.script import call_parse
from fastcore.xtras import working_directory
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.doclinks import nbpath2html
from nbdev.frontmatter import nb_frontmatter
from nbdev.process import NBProcessor
from nbdev.processors import FilterDefaults, add_show_docs, exec_show_docs
from nbdev.test import _skip_cell
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

cfg = get_config()
nbs_path,doc_path = Path(cfg.nbs_path),Path(cfg.doc_path)
doc_url = cfg.doc_host + cfg.doc_baseurl + '/'  # nbdev's links to our own pages; made relative here

def notebooks() -> list:
    "The notebooks of the site in sidebar order: the front page and guides, then the modules, then the rest"
    nbs = sorted(nbs_path.glob('*.ipynb'))
    key = lambda p: (p.stem != 'index', p.stem != 'tutorial', not p.stem[0].isdigit(), p.stem)
    return sorted(nbs, key=key)

def page_name(nb:Path) -> str: return nbpath2html(nb).name

def has_outputs(nb) -> bool: return any(c.get('outputs') for c in nb.cells)

def _run(nb, fn:Path):
    "Run the cells of `nb` (read from `fn`) as `nbdev-test` does; the first failing cell raises"
    os.environ['IN_TEST'] = '1'
    with working_directory(fn.parent), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        CaptureShell(fn).run_all(nb, exc_stop=True, preproc=_skip_cell(nb, cfg.tst_flags.split()))

def execute(fn:Path):
    "The notebook at `fn`, run once; with the outputs of this run, or with those stored in the file if it has any"
    # nbdev adds a `show_doc` cell for each exported name the notebook doesn't document: add them before running it
    nb = NBProcessor(fn, procs=[add_show_docs], rm_directives=False, process=True).nb
    if has_outputs(nb):  # run as a test, shown with the outputs stored in it
        _run(NBProcessor(fn, rm_directives=False, process=True).nb, fn)
        return nb
    _run(nb, fn)
    nb = dict2nb(nb2dict(nb))  # as if read from disk: joined output text, as nbdev's processors expect
    nb.path_ = str(fn)
    return nb

_bar = re.compile(r'(Epoch \d+/\d+ :)? ?\|[█-]*\| [\d.]+% \[[^\]]*\]')  # a fastprogress bar, on the console
_bar_line = re.compile(r'^[\s█]*(Epoch \d+/\d+ :)?\s*$')  # what a finished one leaves

def as_terminal(cell):
    "Stream outputs as a terminal leaves them: each line as its last `\\r` left it, finished progress bars gone"
    for o in cell.get('outputs', []):
        if o.get('output_type') != 'stream': continue
        lines = [_bar.sub('', l.rsplit('\r', 1)[-1]) for l in o['text'].split('\n')]
        o['text'] = '\n'.join(l for l in lines if not _bar_line.match(l)) + '\n'

_directive = re.compile(r'^#\|\s*([\w-]+):?\s*(.*)$')

def quarto_directives(cell):
    "What Quarto does with the `#|` lines nbdev leaves in a cell: `echo: false` shows only the outputs; none is shown"
    if cell.cell_type != 'code': return
    lines = cell.source.split('\n')
    n = next((i for i,l in enumerate(lines) if not _directive.match(l)), len(lines))
    if any(_directive.match(l).groups() == ('echo', 'false') for l in lines[:n]): cell.metadata['tags'] = ['hide-input']
    cell.source = '\n'.join(lines[n:])
    for o in cell.get('outputs', []):  # `show_doc`'s source link carries Quarto attributes
        md = o.get('data', {}).get('text/markdown')
        if md: o['data']['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', md)

class _Procs(FilterDefaults):
    "nbdev's docs processors, less the one that runs `show_doc` cells (`execute` ran them all), plus ours"
    def base_procs(self): return [p for p in super().base_procs() if p is not exec_show_docs] + [quarto_directives, as_terminal]

def process(nb):
    "nbdev's docs processing of an executed notebook: frontmatter, `#| hide`, `show_doc`, links"
    _Procs()(nb)
    nb.cells = [c for c in nb.cells if c.get('source') is not None and c.cell_type != 'raw']
    return nb

def _fix_links(text:str) -> str:
    "Links between pages made relative, to `.html` pages; heading ids lowercased as nbdev's anchors are"
    text = text.replace(doc_url, '')
    text = re.sub(r'href="(?:\d+[a-z]*_)?([\w-]+)\.ipynb', r'href="\1.html', text)
    text = re.sub(r'(<h\d id=")([^"]+)', lambda m: m[1] + m[2].lower(), text)
    return re.sub(r'(class="anchor-link" href="#)([^"]+)', lambda m: m[1] + m[2].lower(), text)

_page = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – channelslast</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="style.css">
</head>
<body>
<nav class="sidebar"><a class="brand" href="index.html">channelslast</a>
<ul>
{nav}
</ul></nav>
<main>
<header><h1 class="title">{title}</h1>{description}</header>
{body}
</main>
</body>
</html>
"""

def _inline_code(text:str) -> str: return re.sub(r'`([^`]+)`', r'<code>\1</code>', text)

def html_body(nb) -> str:
    "The cells of a processed notebook as HTML, by nbconvert's basic template (no page around them, no scripts)"
    conf = Config({'TagRemovePreprocessor': {'enabled': True, 'remove_input_tags': {'hide-input'}}})
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True,
                            anchor_link_text='', config=conf)
    return _fix_links(exporter.from_notebook_node(_nbformat(nb))[0])

def render(fn:Path, pages:list) -> str:
    "The HTML page of the notebook at `fn`, with a sidebar linking `pages` (name, title)"
    nb = process(execute(fn))
    fm,me = nb.get('frontmatter_', {}),page_name(fn)
    nav = '\n'.join(f'<li><a href="{n}"{" class=active" if n == me else ""}>{html.escape(t)}</a></li>' for n,t in pages)
    desc = f'<p class="description">{_inline_code(html.escape(fm["description"]))}</p>' if fm.get('description') else ''
    return _page.format(title=html.escape(fm.get('title', fn.stem)), description=desc, nav=nav, body=html_body(nb))

def _nbformat(nb):
    "nbconvert wants an `nbformat` node; nbdev's attributes (`directives_`, `idx_`...) stay behind"
    d = nb2dict(nb)
    for c in d['cells']:
        if c['cell_type'] == 'code': c.setdefault('outputs', []); c.setdefault('execution_count', None)
        c['metadata'] = {'tags': c['metadata'].get('tags', [])}  # execnb's timings are not in nbformat's schema
    return nbformat.reads(json.dumps(d), as_version=4)

def title_of(fn:Path) -> str:
    "The page's title in the sidebar: nbdev's frontmatter title (its first `# heading`); the front page is Home"
    return 'Home' if fn.stem == 'index' else nb_frontmatter(read_nb(fn)).get('title', fn.stem)

def sidebar() -> list:
    "(page, title) of every page, in sidebar order"
    return [(page_name(f), title_of(f)) for f in notebooks()]

def build_page(fn:Path):
    "Render the notebook at `fn` into `_docs/`"
    (doc_path/page_name(fn)).write_text(render(fn, sidebar()))

_workers = min(2, os.cpu_count())
# pages by build time, slowest first, as measured on 2 cores (2026-12-01: 162, 105, 96, 81, 57, 40, 33 s; the rest under 25)
_slowest = ['02_callback', 'tutorial', '04_bench', 'survey', '05_cli', '02a_checkpoint', '03_check']

def _build_in_subprocess(fn:Path) -> tuple:
    "(page, seconds, error or None): each page in a process of its own, as `nbdev-test` runs each notebook"
    t = time.perf_counter()
    # each of the pages built at once gets its share of the cores: two processes with a thread per core each made
    # the build 2-10x slower on 2 cores (OpenMP threads spinning against each other). A user's setting wins
    env = {'OMP_NUM_THREADS': str(max(1, os.cpu_count() // _workers)), **os.environ}
    # and a temporary folder of its own, removed when the page is built: what a notebook writes there (images, pickles,
    # checkpoints, compile caches) can't pile up in /tmp run after run, even when the notebook fails before cleaning up
    with tempfile.TemporaryDirectory(prefix=f'{fn.stem}-') as tmp:
        # the CPU choices it makes remembered there too: a page doesn't find another's (`workload`)
        res = subprocess.run([sys.executable, __file__, '--page', str(fn)], capture_output=True, text=True,
                             env={**env, 'TMPDIR': tmp, 'CHANNELSLAST_CACHE': f'{tmp}/choices.json'})
    err = f"{fn.name} failed:\n{res.stdout[-2000:]}{res.stderr[-6000:]}" if res.returncode else None
    return page_name(fn),time.perf_counter() - t,err

_css = """
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; display: flex; }
.sidebar { position: sticky; top: 0; height: 100vh; overflow-y: auto; width: 14rem; flex: none; padding: 1.5rem 1rem;
  box-sizing: border-box; background: #f6f8fa; border-right: 1px solid #d0d7de; }
.sidebar .brand { font-weight: 700; font-size: 1.2rem; color: #1f2328; text-decoration: none; }
.sidebar ul { list-style: none; padding: 0; margin: 1rem 0; }
.sidebar li a { display: block; padding: .25rem .5rem; border-radius: 6px; color: #1f2328; text-decoration: none; }
.sidebar li a:hover { background: #eaeef2; }
.sidebar li a.active { background: #ddf4ff; font-weight: 600; }
main { min-width: 0; max-width: 64rem; padding: 1.5rem 2.5rem 4rem; flex: 1; }
header .description { color: #59636e; font-size: 1.1rem; }
a { color: #0969da; }
pre { background: #f6f8fa; padding: .75rem 1rem; border-radius: 6px; overflow-x: auto; font-size: 13.5px; }
code { font-size: 90%; }
blockquote { margin-left: 0; padding-left: 1rem; border-left: 4px solid #d0d7de; color: #59636e; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 14px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
table.dataframe td, table.dataframe th { text-align: right; }  /* pandas: numbers line up */
th { background: #f6f8fa; }
img { max-width: 100%; height: auto; }
.jp-OutputArea-output pre { background: #fff; border: 1px solid #eaeef2; }
.jp-RenderedHTMLCommon hr { border: 0; border-top: 1px solid #d0d7de; margin: 2rem 0 1rem; }
"""

def build_site() -> list:
    "Run and render every notebook into `_docs/`, two at a time; exit naming each notebook that failed"
    doc_path.mkdir(exist_ok=True)
    for p in doc_path.glob('*.html'): p.unlink()
    (doc_path/'style.css').write_text(_css + HtmlFormatter(style='default').get_style_defs('.highlight'))
    # one process per page: one notebook's patches and state can't leak into another. The slowest pages start first,
    # so the two workers end together (it was 376 s in sidebar order, callback's 162 s last to start; ~340 s this way)
    nbs = sorted(notebooks(), key=lambda p: _slowest.index(p.stem) if p.stem in _slowest else len(_slowest))
    done = parallel(_build_in_subprocess, nbs, n_workers=_workers, threadpool=True, progress=False)
    for page,secs,err in done: print(f"{'FAILED' if err else 'ran'} {page} in {secs:.0f} s")
    errs = [err for _,_,err in done if err]
    if errs: sys.exit('\n\n'.join(errs) + f"\n{len(errs)} of {len(done)} notebooks failed")
    return [page for page,_,_ in done]

def readme_text() -> str:
    "README.md: nbs/index.ipynb as Markdown, without its hidden (test) cells; links to pages point at their notebooks"
    nb = NBProcessor(nbs_path/'index.ipynb', procs=[], rm_directives=False, process=True).nb
    parts = []
    for c in nb.cells:
        if 'hide' in c.directives_: continue
        src = c.source.strip()
        parts.append(src if c.cell_type == 'markdown' else f"```python\n{src}\n```")
    text = '\n\n'.join(parts) + '\n'
    # links between notebooks, relative to nbs/, are made relative to the repository
    return re.sub(r'\]\(([\w-]+\.ipynb)\)', lambda m: f"]({nbs_path.relative_to(cfg.config_path).as_posix()}/{m[1]})", text)

@call_parse
def main(
    readme:bool=False, # Only write README.md
    site:bool=False, # Only render the site
    page:str=None, # Only render this notebook's page
):
    "Write README.md from nbs/index.ipynb and render the docs site into _docs/"
    if page: return build_page(Path(page))
    if not site:
        (cfg.config_path/'README.md').write_text(readme_text())
        print('wrote README.md')
    if not readme:
        pages = build_site()
        print(f"wrote {len(pages)} pages to {doc_path}: {', '.join(pages)}")
