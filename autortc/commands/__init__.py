"""Command-line entry points, one module per command family.

Each module exposes ``register(app: typer.Typer) -> None``; heavy imports stay
inside the command bodies so ``autortc --help`` is fast.
"""
