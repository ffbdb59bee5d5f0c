"""pytest plugin for GPU test runs: every ``triton.autotune`` keeps only its first config.

    python3 -m pytest -p bench.pin_autotune -m gpu tests/...

Tests check results, not speed; an autotuner would benchmark all of its configs on the first call of
every new key (seconds per kernel on a GPU) inside the tests. Loaded as a plugin, this wraps
``triton.runtime.autotuner.Autotuner.__init__`` before the test modules import the kernels, so each
autotuned kernel is built with its first config only (a single config is run without benchmarking).
The kernels and their config lists are not changed.
"""

from __future__ import annotations


def pytest_configure(config):
    try:
        from triton.runtime.autotuner import Autotuner
    except ImportError:  # no triton: nothing to pin
        return
    if getattr(Autotuner.__init__, "_fastpixel_pinned", False):
        return
    original = Autotuner.__init__

    def first_config_only(self, fn, arg_names, configs, *args, **kwargs):
        original(self, fn, arg_names, list(configs)[:1], *args, **kwargs)

    first_config_only._fastpixel_pinned = True
    Autotuner.__init__ = first_config_only
