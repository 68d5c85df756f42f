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
