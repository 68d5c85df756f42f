from bench.progress import progress


def test_plain_lines_name_each_label_in_its_own_unit(capsys):
    with progress(True, unit="cells", interval_s=0, units={"seed": "rows"}) as advance:
        advance("seed tasks", 10, 10)
        advance("measure cells", 1, 2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("seed tasks: 10/10 rows (") and lines[0].endswith(" rows/s)")
    assert lines[1].startswith("measure cells: 1/2 cells (")


def test_disabled_progress_prints_nothing(capsys):
    with progress(False) as advance:
        advance("seed tasks", 1, 1)
    assert capsys.readouterr().err == ""


def test_plain_lines_name_each_step_at_once_with_an_eta(capsys):
    # a log (no terminal) gets a line when a step starts, whatever the interval, and an ETA
    with progress(True, unit="cells", interval_s=3600) as advance:
        advance("measure cells", 0, 4)
        advance("measure cells · baseline: warm-up and samples", 0, 4)
        advance("measure cells · baseline: warm-up and samples", 1, 4)  # within the interval: no line
        advance("measure cells · baseline: cold samples", 2, 4)
        advance("measure cells · baseline: plan stability", 2, 4)
        advance("measure cells · composite: warm-up and samples", 4, 4)
        advance("measure cells · composite: warm-up and samples", 4, 4)  # done, and said so already
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":", 2)[:2] for line in lines] == [
        ["measure cells", " 0/4 cells (0.00 cells/s)"],
        ["measure cells · baseline", " warm-up and samples"],
        ["measure cells · baseline", " cold samples"],
        ["measure cells · baseline", " plan stability"],
        ["measure cells · composite", " warm-up and samples"],
    ]
    assert all(", ETA " in line for line in lines[2:4]) and "ETA" not in lines[1] + lines[4]
    assert ": 4/4 cells (" in lines[4]
