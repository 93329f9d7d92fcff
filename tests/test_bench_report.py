"""What a person reads after a run: report.md and the charts say what ran, and show every bar."""

from __future__ import annotations

import pytest

from agents.bench import charts, report

DIFFICULTIES = {f"t{i}": ("basic", "intermediate", "difficult")[i % 3] for i in range(12)}
INFO = {
    "agent": "stale-api",
    "task_source": "bundled",
    "target": "fake:sherbrooke",
    "fit": "strict",
    "timeout": 90.0,
    "versions": {"qiskit": "2.6.2", "qiskit-aer": "0.18.2", "qiskit-ibm-runtime": "0.46.1"},
}


def summary_of(outcome: str, **info: object) -> dict:
    records = [{"task_id": task, "outcome": outcome} for task in DIFFICULTIES]
    return report.build_summary(records, DIFFICULTIES, 1, [1], {**INFO, **info})


def test_the_report_names_the_target_timeout_fitting_and_versions():
    text = report.render_markdown(summary_of("failed"))
    assert "Target: `fake:sherbrooke`." in text
    assert "Timeout: 90 s per program." in text
    assert "`strict`" in text
    assert "qiskit 2.6.2, qiskit-aer 0.18.2, qiskit-ibm-runtime 0.46.1" in text


def test_the_installed_versions_are_read_from_the_packages():
    versions = report.library_versions()
    import qiskit

    assert versions["qiskit"] == qiskit.__version__
    assert set(versions) == {"qiskit", "qiskit-aer", "qiskit-ibm-runtime"}


@pytest.mark.parametrize(("outcome", "label"), [("failed", "0%"), ("passed", "100%")])
def test_every_bar_carries_its_value_and_nothing_covers_a_bar(outcome, label):
    figure = charts.chart_figure(summary_of(outcome))
    try:
        left, right = figure.axes
        labels = [t.get_text() for t in left.texts]
        assert labels.count(label) == 4, labels  # all, basic, intermediate, difficult
        if outcome == "failed":  # a 0% bar is a visible line of its colour, not nothing
            assert all(bar.get_linewidth() > 1 for bar in left.patches)
        renderer = figure.canvas.get_renderer()
        legend = left.get_legend().get_window_extent(renderer)
        for bar in left.patches:
            assert not legend.overlaps(bar.get_window_extent(renderer))
        top = left.get_ylim()[1]
        assert all(bar.get_height() < top for bar in left.patches)  # a 100% bar has headroom
        under_title = [t.get_text() for t in figure.texts]
        assert any("fake:sherbrooke" in t and "qiskit 2.6.2" in t for t in under_title)
        assert [t.get_text() for t in right.texts] == ["12"]
    finally:
        charts._pyplot().close(figure)


def test_a_run_with_no_samples_says_so_instead_of_an_empty_panel():
    empty = report.build_summary([], {}, 1, [2], INFO)
    figure = charts.chart_figure(empty)
    try:
        left, right = figure.axes
        assert "needs n >= 2" in left.texts[0].get_text()
        assert right.texts[0].get_text() == "no samples"
    finally:
        charts._pyplot().close(figure)


def test_runs_compared_in_one_chart(tmp_path):
    runs = {"oracle": summary_of("passed", agent="oracle"), "stale-api": summary_of("failed")}
    figure = charts.compare_figure(runs)
    try:
        (axis,) = figure.axes
        assert axis.get_title() == "pass@1"
        assert [t.get_text() for t in figure.legends[0].get_texts()] == ["oracle", "stale-api"]
        assert sorted(t.get_text() for t in axis.texts) == ["0%"] * 4 + ["100%"] * 4
    finally:
        charts._pyplot().close(figure)
    path = tmp_path / "compare.png"
    charts.write_compare_chart(runs, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_compare_draws_the_chart_it_is_asked_for(tmp_path, capsys):
    from qsandbox_env.cli import main

    runs = []
    for name, outcome in (("oracle", "passed"), ("stale", "failed")):
        directory = tmp_path / name
        directory.mkdir()
        report.write_json(summary_of(outcome, agent=name), str(directory / "summary.json"))
        runs.append(str(directory))
    chart = tmp_path / "compare.png"
    assert main(["bench", "compare", *runs, "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "oracle" in out and f"wrote {chart}" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --chart belongs to compare: a benchmark run refuses it rather than ignoring it.
    assert main(["bench", "--agent", "oracle", "--chart", str(chart)]) != 0
    assert "--chart draws compared runs" in capsys.readouterr().err
