"""Placeholder until its issue lands."""


def main() -> int:
    raise SystemExit("not implemented yet")
