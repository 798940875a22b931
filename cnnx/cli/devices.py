"""``cnnx devices``: what this machine can compute on."""

from __future__ import annotations

import os
import platform

import click

from cnnx.backends import gpu_status


def cpu_description() -> str:
    """The CPU model name and logical core count, as well as the OS reports them."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count() or '?'} logical cores"


@click.command()
def devices() -> None:
    """List the devices cnnx can use: the CPU and each usable GPU (or why there is none)."""
    click.echo(f"cpu     {cpu_description()}")
    count, reason, names = gpu_status()
    if count == 0:
        click.echo(f"cuda    not usable: {reason}")
        return
    for index, name in enumerate(names):
        click.echo(f"cuda:{index}  {name}")
