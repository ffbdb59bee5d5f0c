"""``python -m fastpixel.demo``: the same command as ``fastpixel-demo`` / ``python -m fastpixel.cli.demo``.

Only a ``-m`` entry point: importing it is an error, so that nothing named ``fastpixel.demo`` ever
shadows the package's own attributes (``fastpixel.sample`` is the sampling function). The command
lives in :mod:`fastpixel.cli.demo`.
"""

if __name__ != "__main__":
    raise ImportError("fastpixel.demo is only a `python -m fastpixel.demo` entry point; import "
                      "fastpixel.cli.demo for the command")

from fastpixel.cli.demo import main

main()
