"""The commands: ``fastpixel-train``, ``fastpixel-evaluate``, ``fastpixel-sample``, ``fastpixel-demo``.

Each module has ``build_parser()`` and ``main(argv=None)`` (the console entry point; it returns None,
so the exit status is 0 on success) and runs as ``python -m fastpixel.cli.<name>``. A user mistake,
or what this machine cannot do (a full disk, no GPU, a corrupt file, a missing package), ends with
one line, ``<command>: error: <what was wrong and what to do>``, and exit status 2 (1: a run that
diverged). Every command has ``--version``, checks its output paths before it works, and replaces
no file it did not write unless given ``--overwrite`` (see docs/robustness.md).
"""
