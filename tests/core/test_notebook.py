"""A real notebook, executed by a Jupyter kernel (nbclient + ipykernel): what a node's
display leaves in the saved notebook (the value as text/html for static renders, the
widget view, its live state, the metrics table) and that ``visualize()`` writes no file.

nbclient, nbformat and ipykernel are in the ``test`` extra: without them this test fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat

import millstream

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

CELLS = [
    # 0: the code under test is the kernel's too
    "import os\n"
    "import pandas as pd\n"
    "import millstream\n"
    "from millstream import Stream\n"
    "print(millstream.__file__)",
    # 1: a pipeline; a cell ending with a node displays it
    "source = Stream(stream_name='prices')\n"
    "doubled = source.map(lambda x: x * 2)\n"
    "out = doubled.sink_to_list()\n"
    "source.emit(20)\n"
    "source.emit(21)\n"
    "doubled",
    # 2: a node whose values are DataFrames
    "frames = source.map(lambda x: pd.DataFrame({'price': [x, x + 0.5]}))\n"
    "source.emit(1)\n"
    "frames.display()",
    # 3: a node with metrics (a stand-in for the metrics every node gets)
    "class Counted(Stream):\n"
    "    seen = 0\n"
    "    def update(self, x, who=None, metadata=None):\n"
    "        self.seen += 1\n"
    "        return self._emit(x, metadata=metadata)\n"
    "    @property\n"
    "    def metrics(self):\n"
    "        return {'elements_in': self.seen, 'errors': 0}\n"
    "counted = Counted(source, stream_name='counted')\n"
    "counted.display(metrics=True)",
    # 4: values arriving after the displays
    "for x in (7, 8, 9):\n    source.emit(x)\nout",
    # 5: visualize() shows the graph, without the display sinks, and writes no file
    "from millstream.core.graph import build_node_set\n"
    "image = source.visualize()\n"
    "print(type(image).__name__, len(build_node_set(source)), sorted(os.listdir('.')))",
]


def run_notebook(tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    src = Path(millstream.__file__).resolve().parent.parent
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(src) + (os.pathsep + path if path else ""))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",  # ipykernel's own kernel spec: no `ipykernel install` needed
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    nbformat.validate(nb)
    return nb


def display_of(cell: nbformat.NotebookNode) -> dict:
    shown = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
    assert len(shown) == 1, cell.outputs
    return shown[0].data


def widget_value(nb: nbformat.NotebookNode, data: dict) -> str:
    """The widget's last HTML, as the saved widget state holds it."""
    models = nb.metadata.widgets[WIDGET_STATE]["state"]
    return models[data[WIDGET_VIEW]["model_id"]]["state"]["value"]


def test_a_notebook_shows_values_tables_and_metrics_and_writes_no_file(tmp_path, monkeypatch):
    nb = run_notebook(tmp_path, monkeypatch)
    cells = nb.cells
    src = Path(millstream.__file__).resolve().parent
    assert cells[0].outputs[0].text.strip() == str(src / "__init__.py")

    # the value at display time is in the output itself (what static renders show) ...
    doubled = display_of(cells[1])
    assert "<pre>42</pre>" in doubled["text/html"] and "map" in doubled["text/html"]
    assert doubled["text/plain"].endswith(": 42")
    assert WIDGET_VIEW in doubled
    # ... and the live widget followed the values sent afterwards (saved widget state)
    assert "<pre>18</pre>" in widget_value(nb, doubled)

    frames = display_of(cells[2])
    assert "<table" in frames["text/html"] and "1.5" in frames["text/html"]
    live_table = widget_value(nb, frames)
    assert "<table" in live_table and "9.5" in live_table and "1.5" not in live_table

    counted = display_of(cells[3])
    assert "millstream-metrics" in counted["text/html"] and "no value yet" in counted["text/html"]
    assert "<th>elements_in</th><td>0</td>" in counted["text/html"]
    assert "<th>elements_in</th><td>3</td>" in widget_value(nb, counted)
    assert "<pre>9</pre>" in widget_value(nb, counted)

    assert "[40, 42, 2, 14, 16, 18]" in display_of(cells[4])["text/plain"]

    # source, doubled, its list sink, frames, counted: the three display sinks are left out
    assert cells[5].outputs[0].text.strip() == "Image 5 []"
    assert list((tmp_path / "work").iterdir()) == []
