"""The ``cnnx`` command group and its error handling.

Errors a user can cause (a bad workbook, a missing GPU, a diverging run, an
existing output directory) become one line on stderr and exit status 1; click's
own usage errors (an unknown option value) exit with status 2. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

import click

from cnnx._version import __version__
from cnnx.cli.checkpoints import evaluate, predict
from cnnx.cli.devices import devices
from cnnx.cli.experiment import experiment
from cnnx.cli.explain import explain
from cnnx.cli.inspect import inspect_command
from cnnx.cli.show import show
from cnnx.cli.summary import summary
from cnnx.cli.train import train
from cnnx.cli.tune import tune
from cnnx.errors import CnnxError


class CnnxGroup(click.Group):
    """A click group that turns cnnx's own errors into a one-line message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`cnnx ... | head`): not an error worth a message.
            # Point stdout at /dev/null so the interpreter's final flush is quiet too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except (CnnxError, ValueError, OSError) as exc:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.strerror and exc.filename:
                # "FILE: reason" rather than "[Errno 2] reason: 'FILE'".
                message = f"{exc.filename}: {exc.strerror}"
            if isinstance(exc, KeyError) and exc.args:
                message = str(exc.args[0])
            # One line, as promised: multi-line messages (MNIST mirrors) are joined.
            message = " ".join(part.strip() for part in message.splitlines() if part.strip())
            click.echo(f"error: {message}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=CnnxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cnnx")
def main() -> None:
    """cnnx: a small, fast, honest convolutional-network library (NumPy/CuPy).

    \b
    Examples:
      cnnx train                          # SimpleCNN on the bundled 6×6 digits, CPU
      cnnx train --device cuda            # the same on the GPU
      cnnx train --output-dir runs/a      # keep metrics and weights
      cnnx evaluate runs/a/last.npz       # accuracy, precision/recall, confusion matrix
      cnnx inspect runs/a/last.npz        # health report: dead units, gradients, warnings
      cnnx explain --worked-example       # the slides' example, step by step
      cnnx show filters runs/a/last.npz -o filters.png
      cnnx summary simple                 # layers and parameter counts
      cnnx devices                        # which devices are usable here

    Run "cnnx COMMAND --help" for each command's options.
    """


main.add_command(train)
main.add_command(experiment)
main.add_command(tune)
main.add_command(evaluate)
main.add_command(predict)
main.add_command(summary)
main.add_command(inspect_command)
main.add_command(explain)
main.add_command(show)
main.add_command(devices)
