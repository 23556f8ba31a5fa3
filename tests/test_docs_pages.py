"""The Markdown pages' Python blocks: nothing runs them (the docstrings are
doctested), so check statically that a page's blocks, read in order, use
only names that the page defines or imports. A block that used `model`
where the page had trained `dae`, or `keras` before any import, failed
with a NameError for whoever copied it. Placeholders for the reader's own
objects are named `my_...`."""

import ast
import builtins
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(path):
    """`(first line number, source)` of each ```python block."""
    lines = path.read_text("utf-8").split("\n")
    blocks, start = [], None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() == "```python":
            start = number + 1
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start - 1:number - 1])))
            start = None
    return blocks


def undefined_names(blocks):
    """Names each block reads that no block up to it defines."""
    defined = set(dir(builtins))
    missing = []
    for start, source in blocks:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update((a.asname or a.name).split(".")[0]
                               for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx,
                                                           ast.Store):
                defined.add(node.id)
        missing += [f"line {start}: {node.id}" for node in ast.walk(tree)
                    if isinstance(node, ast.Name)
                    and isinstance(node.ctx, ast.Load)
                    and node.id not in defined
                    and not node.id.startswith("my_")]
    return missing


def test_the_checker_finds_an_undefined_name():
    blocks = [(1, "from keras_genzoo import AutoEncoder\ndae = AutoEncoder()"),
              (5, "plots.plot_latent_space(model, my_data)")]
    assert sorted(undefined_names(blocks)) == ["line 5: model", "line 5: plots"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_blocks_define_what_they_use(page):
    assert undefined_names(python_blocks(page)) == []
