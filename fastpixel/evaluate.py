"""``python -m fastpixel.evaluate``: the same command as ``fastpixel-evaluate`` / ``python -m fastpixel.cli.evaluate``.

Only a ``-m`` entry point: importing it is an error, so that nothing named ``fastpixel.evaluate`` ever
shadows the package's own attributes (``fastpixel.sample`` is the sampling function). The command
lives in :mod:`fastpixel.cli.evaluate`.
"""

if __name__ != "__main__":
    raise ImportError("fastpixel.evaluate is only a `python -m fastpixel.evaluate` entry point; import "
                      "fastpixel.cli.evaluate for the command")

from fastpixel.cli.evaluate import main

main()
