"""docs/models.md starts with the commands from nothing to ``mdv5a-speciesnet``; run what can run here.

The pulls need the network (Kaggle, GitHub), so the test checks each command against the real CLI (every
subcommand and flag exists, every model name is in the catalog, every exported variable is a setting), runs
the documented offline path (``sleuth models import`` of a release, the random-weight golden one standing in
for 4.0.3a), and checks that the documented selection fails at start-up with the documented pull command
while MegaDetector is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "models.md"
GOLD = ROOT / "tests" / "classifier" / "golden_speciesnet" / "release.tar.gz"


def _quickstart() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"^## From nothing to MegaDetector \+ SpeciesNet.*?^```sh\n(.*?)^```", text, re.S | re.M)
    assert m, "docs/models.md must start with the quickstart block"
    assert text.index(m.group(0)) < 200, "the quickstart comes first"
    return [ln.split("#")[0].strip() for ln in m.group(1).splitlines() if ln.split("#")[0].strip()]


def test_quickstart_commands_exist() -> None:
    from sleuth.cli.app import app
    from sleuth.engine import catalog as cat
    from sleuth.settings import Settings

    cmds = _quickstart()
    assert cmds[0] == "sleuth models pull mdv5a.0.0" and cmds[1].startswith("sleuth models pull speciesnet-")
    catalog = cat.load_catalog()
    runner = CliRunner()
    for cmd in cmds:
        words = shlex.split(cmd)
        if words[0] == "export":
            for assign in words[1:]:
                var, _, value = assign.partition("=")
                assert var.startswith("SLEUTH_") and var[7:].lower() in Settings.model_fields, var
                assert value in catalog, value
            continue
        assert words[0] == "sleuth"
        sub = [w for w in words[1:3] if not w.startswith("-") and "/" not in w and "~" not in w]
        sub = sub[:2] if sub and sub[0] == "models" else sub[:1]
        r = runner.invoke(app, [*sub, "--help"])
        assert r.exit_code == 0, (cmd, r.output)
        for flag in (w for w in words if w.startswith("-")):
            assert flag in r.output, (cmd, flag)
        if sub[:2] == ["models", "pull"]:
            assert all(n in catalog for n in words[3:]), cmd


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (convert extra) needed")
def test_quickstart_offline_path_and_start_up_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.cli.app import app
    from sleuth.services.model_selection import SelectionError, check_selection
    from sleuth.settings import Settings, get_settings

    monkeypatch.setenv("SLEUTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLEUTH_MODEL_MIRROR", raising=False)
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["models", "import", str(GOLD)])  # the doc's offline step
        assert r.exit_code == 0, r.output
        s = Settings(data_dir=tmp_path / "data", model_cache=tmp_path / "cache", classifier_pack="speciesnet-4.0.2a")
        check_selection(s)  # SpeciesNet installed: fine
        with pytest.raises(SelectionError, match=re.escape("run `sleuth models pull mdv5a.0.0` first")):
            check_selection(s.model_copy(update={"wildlife_detector": "mdv5a.0.0"}))
    finally:
        get_settings.cache_clear()
