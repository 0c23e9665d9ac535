"""The README's collector example is a valid collector (docs that cannot rot silently)."""

from pathlib import Path

from signals_dagster.spec.loader import load_file

ROOT = Path(__file__).resolve().parents[1]


def test_readme_collector_example_validates(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.yaml"
    path.write_text(block)
    spec = load_file(path)
    assert spec.name == "orders.revenue.daily"
    assert spec.source.pool == "shop-db"
    assert spec.late_data is not None
