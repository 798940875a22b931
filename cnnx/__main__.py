"""``python -m cnnx`` runs the command line."""

from cnnx.cli import main

if __name__ == "__main__":
    main()
