"""The commands: ``fastpixel-train``, ``fastpixel-evaluate``, ``fastpixel-sample``, ``fastpixel-demo``.

Each module has ``build_parser()`` and ``main(argv=None)`` (the console entry point; it returns None,
so the exit status is 0 on success) and runs as ``python -m fastpixel.cli.<name>``. A user mistake
ends with one line, ``<command>: error: <what was wrong and what to do>``, and exit status 2.
"""
