"""``python -m fastpixel.sample``: the same command as ``fastpixel-sample`` / ``python -m fastpixel.cli.sample``.

Only a ``-m`` entry point: importing it is an error, so that nothing named ``fastpixel.sample`` ever
shadows the package's own attributes (``fastpixel.sample`` is the sampling function). The command
lives in :mod:`fastpixel.cli.sample`.
"""

if __name__ != "__main__":
    raise ImportError("fastpixel.sample is only a `python -m fastpixel.sample` entry point; import "
                      "fastpixel.cli.sample for the command (fastpixel.sample is the sampling function)")

from fastpixel.cli.sample import main

main()
