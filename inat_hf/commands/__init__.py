"""Command-line entry points. ``scripts/*.py`` and the ``inat-*`` console scripts call ``main()`` here.

Each module holds its argument dataclass (with ``help`` metadata, parsed by ``HfArgumentParser``) and a thin
``main(argv=None) -> int`` that calls into the library; there is no logic here that a test would need.
"""
