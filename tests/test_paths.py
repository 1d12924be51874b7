import pytest

from mgbench.paths import atomic_write_bytes, atomic_write_with


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic_write_bytes(path, b"one")
    assert path.read_bytes() == b"one" and oct(path.stat().st_mode)[-3:] != "600"

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(path, broken)
    assert path.read_bytes() == b"one" and [p.name for p in path.parent.iterdir()] == ["x.json"]
