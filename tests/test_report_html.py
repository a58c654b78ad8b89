"""The report's static page and figures: deterministic files, and a real (headless) browser
that loads the page and every image on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deepnets.results.collect import RunRecord
from deepnets.results.html import Section, write_index
from deepnets.results.plots import plot_confusion, plot_curves, plot_examples

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # git-ignored
CONFUSION = "figures/confusion.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--virtual-time-budget=5000",  # let `load` fire and the page's script run before output
]


def make_record(variant: str, seed: int, accs: list[float], losses: list, **extra) -> RunRecord:
    history = [
        {"epoch": e, "train_loss": loss, "train_accuracy": acc, "val_accuracy": acc, "lr": 0.1}
        for e, (acc, loss) in enumerate(zip(accs, losses, strict=True), start=1)
    ]
    fields = {
        "experiment": "exp",
        "space": "tiny",
        "table": "digits-vgg",
        "fidelity": "smoke",
        "variant": variant,
        "seed": seed,
        "run_dir": f"/nonexistent/runs/{variant}-s{seed}",
        "status": "ok",
        "epochs_run": len(history),
        "epochs_target": 3,
        "val_accuracy": accs[-1],
        "best_val_accuracy": max(accs),
        "test_accuracy": accs[-1],
        "wall_seconds": 1.0,
        "history": history,
    }
    return RunRecord(**(fields | extra))


def confusion_report() -> dict:
    return {
        "test_accuracy": 0.8,
        "per_class": {
            "confusion_matrix": [[5, 1, 0], [1, 3, 0], [0, 0, 0]],
            "class_names": list("abc"),
        },
    }


@pytest.fixture
def records() -> list[RunRecord]:
    return [
        make_record("vgg11", 0, [0.5, 0.7, 0.8], [1.2, 0.8, 0.5]),
        make_record("vgg11", 1, [0.4, 0.6, 0.9], [1.3, None, 0.4]),  # non-finite loss skipped
        make_record("vgg16", 0, [0.3, 0.5], [1.5, float("nan")], status="stopped early"),
    ]


def build_page(out: Path, records: list[RunRecord], broken: bool = False) -> Path:
    """Two sections, two real figures (and optionally a reference to a missing one)."""
    plot_curves(records, "digits / vgg", out / "figures" / "curves.png")
    record = records[0]
    record.test_report = confusion_report()
    plot_confusion(record, out / CONFUSION)
    images = [("curves", "figures/curves.png")] + [("absent", "figures/missing.png")] * broken
    rows = [[r.variant, str(r.seed), f"{100 * r.test_accuracy:.1f}", r.status] for r in records]
    notes = ["mean of 2 seeds & one stopped early"]
    sections = [
        Section("Results <digits>", ["variant", "seed", "test %", "status"], rows, images),
        Section("Confusion", ["class", "recall"], [["a", "0.83"]], [("cm", CONFUSION)], notes),
    ]
    return write_index(out, "Report <test>", sections)


def test_plot_curves_is_byte_identical(tmp_path, records):
    first = plot_curves(records, "t", tmp_path / "a.png")
    second = plot_curves(records, "t", tmp_path / "b.png")
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()


def test_plot_confusion_needs_a_test_report(tmp_path, records):
    with pytest.raises(ValueError, match="no confusion matrix"):
        plot_confusion(records[0], tmp_path / "cm.png")


def test_index_is_static_escaped_and_deterministic(tmp_path, records):
    index = build_page(tmp_path / "one", records)
    again = build_page(tmp_path / "two", records)
    html = index.read_text()
    assert html == again.read_text()
    assert "Results &lt;digits&gt;" in html and "2 seeds &amp; one" in html
    assert 'src="figures/curves.png"' in html and "file://" not in html
    assert html.count("<tr>") == 1 + len(records) + 1 + 1  # two headers, four data rows
    with pytest.raises(ValueError, match="inside the report folder"):
        write_index(tmp_path, "t", [Section("s", [], [], images=[("x", "/abs/x.png")])])


def find_chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs it: apt-get install chromium)")
        pytest.skip("chromium is not installed; apt-get install chromium to run browser tests")
    return browser


def chromium(tmp_path: Path, page: Path, *args: str) -> str:
    """Run headless Chromium once on `page`; its stdout (the DOM for --dump-dom)."""
    command = [
        find_chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_browser_loads_page_and_images(tmp_path, records):
    index = build_page(tmp_path / "report", records)
    dom = chromium(tmp_path, index, "--dump-dom")
    assert 'data-images="ok"' in dom
    assert dom.count("<tr>") == 6
    assert "Results &lt;digits&gt;" in dom and "<h2>Confusion</h2>" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_html.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, index, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists() and shot.stat().st_size > 0


def test_browser_reports_a_missing_image(tmp_path, records):
    index = build_page(tmp_path / "report", records, broken=True)
    dom = chromium(tmp_path, index, "--dump-dom")
    assert 'data-images="broken:1"' in dom


@pytest.mark.parametrize("run_dir", ["s3://bucket/runs/vgg11-s0", "local"])
def test_plot_examples_without_local_checkpoint_is_none(tmp_path, records, run_dir):
    if run_dir == "local":
        run_dir = str(tmp_path / "run")  # a run folder with files but no checkpoint_*/
        Path(run_dir).mkdir()
        (Path(run_dir) / "run.json").write_text("{}")
    record = records[0]
    record.run_dir = run_dir
    record.config = {"model": {"name": "vgg11"}, "data": {"dataset": "digits"}}
    assert plot_examples(record, tmp_path / "examples.png") is None
    assert not (tmp_path / "examples.png").exists()
