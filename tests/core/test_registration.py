"""Stream.register_lazy: how layers above core put methods on Stream without being imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from millstream import Stream


def test_lazy_method_imports_its_module_on_first_call_and_then_is_the_real_node(tmp_path):
    pkg = tmp_path / "lazy_layer_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from millstream import Stream\n"
        "IMPORTED = True\n"
        "class twice(Stream):\n"
        "    def update(self, x, who=None, metadata=None):\n"
        "        return self._emit(2 * x, metadata=metadata)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        Stream.register_lazy("twice", "lazy_layer_pkg:twice")
        assert "lazy_layer_pkg" not in sys.modules
        source = Stream()
        out = source.twice().sink_to_list()
        assert "lazy_layer_pkg" in sys.modules
        import lazy_layer_pkg

        assert (
            Stream.twice is not None
            and Stream.__dict__["twice"].__wrapped__ is lazy_layer_pkg.twice
        )
        source.emit(21)
        assert out == [42]
        assert isinstance(Stream().twice(), lazy_layer_pkg.twice)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lazy_layer_pkg", None)
        del Stream.twice


def test_lazy_static_method_and_missing_module_message():
    Stream.register_lazy(
        "from_nowhere",
        "millstream_no_such_module:source",
        staticmethod,
        missing="pkg: pip install x",
    )
    try:
        with pytest.raises(
            ImportError, match=r"^Stream.from_nowhere\(\) needs pkg: pip install x$"
        ):
            Stream.from_nowhere(1)
    finally:
        del Stream.from_nowhere


def test_upper_layers_are_registered_but_not_imported_by_import_millstream():
    code = (
        "import sys, millstream\n"
        "from millstream import Stream\n"
        "assert all(hasattr(Stream, n) for n in ('scatter', 'to_dataframe', 'to_batch', "
        "'window', 'with_timestamps', 'from_kafka'))\n"
        "heavy = [m for m in ('dask', 'distributed', 'pandas', 'confluent_kafka', "
        "'millstream.dask') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
