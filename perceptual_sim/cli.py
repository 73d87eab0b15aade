"""Command line: placeholder replaced below."""


def main() -> int:
    raise SystemExit("cli not yet written")
