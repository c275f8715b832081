"""The README documents what the code does: its schema tables are generated from scanner/schemas.py."""

from pathlib import Path

from scanner.schemas import schema_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_schema_section_matches_the_code():
    assert schema_markdown().strip() in README.read_text(), "run `python -m scanner.schemas` and paste into README"


def test_readme_names_the_two_quickstart_commands():
    text = README.read_text()
    assert "scanner demo --out scanner-demo" in text
    assert "python -m pytest -q" in text
