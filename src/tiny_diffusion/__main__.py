from .cli import main

if __name__ == "__main__":  # guard: sweep's spawned workers import this module
    raise SystemExit(main())
