"""Tests for cnnx.utils.progress.Progress, drawn into StringIO streams with a fake clock."""

import io

import pytest

from cnnx.utils import progress as progress_module
from cnnx.utils.progress import Progress, format_amount, format_duration


class TtyStringIO(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress_module, "_now", fake)
    return fake


@pytest.fixture(autouse=True)
def terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")


def drawn_lines(text):
    """The successive redraws (text between carriage returns), trailing padding removed."""
    return [part.rstrip(" \n") for part in text.split("\r")[1:]]


def test_disabled_writes_nothing():
    stream = io.StringIO()
    with Progress(10, desc="x", stream=stream, enabled=False) as bar:
        bar.update(5)
        bar.set_postfix("loss 1.0")
        bar.update(5)
    assert stream.getvalue() == ""


def test_enabled_none_follows_isatty():
    plain = io.StringIO()
    with Progress(3, stream=plain) as bar:
        bar.update(3)
    assert plain.getvalue() == ""
    assert bar.enabled is False

    tty = TtyStringIO()
    with Progress(3, stream=tty, min_interval=0) as bar:
        bar.update(3)
    assert bar.enabled is True
    assert "3/3 it" in tty.getvalue()


def test_default_stream_is_stderr(capsys):
    with Progress(2, desc="dl", enabled=True, min_interval=0) as bar:
        bar.update(2)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "dl: 100%" in captured.err


def test_line_shows_desc_percent_bar_count_rate_eta_and_postfix(clock):
    stream = io.StringIO()
    bar = Progress(10, desc="epoch 1", unit="samples", stream=stream, enabled=True, min_interval=0)
    clock.t += 2.0
    bar.update(5)
    bar.set_postfix("loss 0.123 acc 0.98")
    line = drawn_lines(stream.getvalue())[-1]
    assert line.startswith("epoch 1:  50%|")
    assert "#" in line and "." in line
    assert "5/10 samples" in line
    assert "[00:02<00:02, 2.5 samples/s]" in line
    assert line.endswith("loss 0.123 acc 0.98")
    bar.close()
    assert stream.getvalue().endswith("\n")


def test_unit_scale_bytes_and_rate(clock):
    stream = io.StringIO()
    bar = Progress(
        11_600_000,
        desc="f.gz",
        unit="B",
        unit_scale=True,
        stream=stream,
        enabled=True,
        min_interval=0,
    )
    clock.t += 2.0
    bar.update(6_800_000)
    line = drawn_lines(stream.getvalue())[-1]
    assert "6.8 MB/11.6 MB" in line
    assert "3.4 MB/s" in line
    assert "<00:01," in line  # 4.8 MB left at 3.4 MB/s


def test_rate_uses_prefix_on_number_for_word_units(clock):
    stream = io.StringIO()
    bar = Progress(None, unit="samples", stream=stream, enabled=True, min_interval=0)
    clock.t += 2.0
    bar.update(24_600)
    line = drawn_lines(stream.getvalue())[-1]
    assert "12.3k samples/s" in line
    assert "24600 samples" in line
    assert "%" not in line and "|" not in line  # no bar without a total


def test_redraws_at_most_every_min_interval(clock):
    stream = io.StringIO()
    bar = Progress(1000, stream=stream, enabled=True, min_interval=0.5)
    assert len(drawn_lines(stream.getvalue())) == 1  # initial 0% line
    for _ in range(100):
        bar.update()
    assert len(drawn_lines(stream.getvalue())) == 1
    clock.t += 0.5
    bar.update()
    assert len(drawn_lines(stream.getvalue())) == 2
    assert "101/1000" in drawn_lines(stream.getvalue())[-1]


def test_reaching_total_always_redraws(clock):
    stream = io.StringIO()
    bar = Progress(10, stream=stream, enabled=True, min_interval=3600)
    bar.update(9)
    assert len(drawn_lines(stream.getvalue())) == 1
    bar.update(1)
    assert "100%" in drawn_lines(stream.getvalue())[-1]
    bar.update(1)  # past the total: no forced redraw
    assert len(drawn_lines(stream.getvalue())) == 2


def test_close_draws_final_state_once_and_is_idempotent(clock):
    stream = io.StringIO()
    bar = Progress(10, stream=stream, enabled=True, min_interval=3600)
    bar.update(3)
    bar.close()
    bar.close()
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "3/10" in drawn_lines(text)[-1]
    bar.update(1)  # after close: counted, nothing drawn
    assert stream.getvalue() == text
    assert bar.n == 4


def test_context_manager_closes_on_exception(clock):
    stream = io.StringIO()
    with pytest.raises(RuntimeError), Progress(5, stream=stream, enabled=True) as bar:
        bar.update(2)
        raise RuntimeError("x")
    assert stream.getvalue().endswith("\n")


@pytest.mark.parametrize("columns", [20, 40, 79, 150])
def test_lines_fit_terminal_width(clock, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = io.StringIO()
    bar = Progress(
        500,
        desc="a fairly long description",
        unit="samples",
        stream=stream,
        enabled=True,
        min_interval=0,
    )
    clock.t += 3
    bar.update(250)
    bar.set_postfix("loss 0.123456 acc 0.987654")
    bar.close()
    lines = drawn_lines(stream.getvalue())
    assert all(len(line) <= columns - 1 for line in lines)
    if columns >= 100:
        assert "|#" in lines[-1]


def test_shorter_line_blanks_the_rest_of_a_longer_one(clock):
    stream = io.StringIO()
    bar = Progress(None, stream=stream, enabled=True, min_interval=0)
    bar.set_postfix("a long postfix text")
    bar.set_postfix("")
    first, second = stream.getvalue().split("\r")[2:4]
    assert len(second) == len(first)
    assert second.endswith(" " * len(" a long postfix text"))


def test_zero_total_is_complete():
    stream = io.StringIO()
    with Progress(0, stream=stream, enabled=True):
        pass
    assert "100%" in stream.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"total": -1}, ValueError),
        ({"total": "10"}, TypeError),
        ({"total": 2.5}, TypeError),
        ({"total": True}, TypeError),
        ({"total": 10, "min_interval": -0.1}, ValueError),
    ],
)
def test_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        Progress(stream=io.StringIO(), **kwargs)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0, "B", "0 B"),
        (999, "B", "999 B"),
        (1000, "B", "1.0 kB"),
        (1_234_567, "B", "1.2 MB"),
        (999_960, "B", "1.0 MB"),
        (123_456_789, "B", "123 MB"),
        (12_345.6, "samples", "12.3k samples"),
        (0.52, "it", "0.52 it"),
        (3.4e9, "B", "3.4 GB"),
    ],
)
def test_format_amount(value, unit, expected):
    assert format_amount(value, unit) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, "00:00"), (65.2, "01:05"), (3599.4, "59:59"), (3725, "1:02:05")]
)
def test_format_duration(seconds, expected):
    assert format_duration(seconds) == expected
