__version__ = "0.0.1"

_plain = ('optimize', 'autocast', 'restore')  # `channelslast.optimize(model, optimizer)`: the plain-PyTorch layer (see `plain`)

def __getattr__(name):
    "Import the plain-PyTorch layer (and torch) when it is first used, not at `import channelslast`"
    if name in _plain:
        from . import plain
        return getattr(plain, name)
    raise AttributeError(f"module 'channelslast' has no attribute {name!r}")
