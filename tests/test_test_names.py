"""Every test module has its own file name: pytest imports them by base name (the test
folders are not packages), so two ``test_spec.py`` files fail the whole run's collection."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent


def test_no_two_test_modules_share_a_name() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        package = (path.parent / "__init__.py").exists()
        if path.name in ("__init__.py", "conftest.py") or package:
            continue
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
