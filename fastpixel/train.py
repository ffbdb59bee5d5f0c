"""``python -m fastpixel.train``: the same command as ``fastpixel-train`` / ``python -m fastpixel.cli.train``.

Only a ``-m`` entry point: importing it is an error, so that nothing named ``fastpixel.train`` ever
shadows the package's own attributes (``fastpixel.sample`` is the sampling function). The command
lives in :mod:`fastpixel.cli.train`.
"""

if __name__ != "__main__":
    raise ImportError("fastpixel.train is only a `python -m fastpixel.train` entry point; import "
                      "fastpixel.cli.train for the command (fastpixel.fit trains from Python)")

from fastpixel.cli.train import main

main()
