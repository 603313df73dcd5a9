"""The documentation's reference pages stay true to the code: they are what
scripts/gen-docs writes now, and every setting is described."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_current(tmp_path: Path) -> None:
    gen = _gen_docs()
    written = gen.generate(tmp_path)
    stale = [
        p.name for p in written if (ROOT / gen.REFERENCE / p.name).read_text(encoding="utf-8") != p.read_text("utf-8")
    ]
    assert not stale, f"docs/reference/{', '.join(stale)} out of date: run scripts/gen-docs"


def test_check_mode_names_a_stale_page(tmp_path: Path) -> None:
    gen = _gen_docs()
    gen.generate(tmp_path)
    assert gen.stale(tmp_path) == []
    (tmp_path / "cli.md").write_text((tmp_path / "cli.md").read_text() + "hand edit\n")
    (tmp_path / "config.md").unlink()
    assert gen.stale(tmp_path) == ["cli.md", "config.md"]


def test_generation_never_imports_feast_or_pandas(tmp_path: Path) -> None:
    code = (
        "import sys, runpy; sys.argv = ['gen-docs', '--out', sys.argv[1]]; "
        f"sys.path.insert(0, {str(ROOT / 'src')!r}); "
        f"m = runpy.run_path({str(ROOT / 'scripts' / 'gen_docs.py')!r}); m['main']() ; "
        "bad = [n for n in ('feast', 'pandas', 'paramiko') if n in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True, timeout=60)


def test_cli_reference_lists_every_command_and_option() -> None:
    gen = _gen_docs()
    page = (ROOT / gen.REFERENCE / "cli.md").read_text(encoding="utf-8")
    for name, cmd in gen.leaf_commands().items():
        assert f"\n## featctl {name}\n" in page or f"\n### featctl {name}\n" in page, name
        for param in cmd.params:
            for opt in getattr(param, "opts", ()):
                if opt.startswith("-"):
                    assert f"`{opt}`" in page, (name, opt)
    # The generator walks the app itself: a command it did not know of shows up.
    assert {"deploy", "score", "historical", "destroy"} <= set(gen.leaf_commands())


def test_every_setting_has_a_description() -> None:
    from featctl import config

    gen = _gen_docs()
    missing = [k for k in gen._described_keys() if not config.DESCRIPTIONS.get(k, "").strip()]
    assert not missing, f"add these to config.py DESCRIPTIONS: {missing}"
    unknown = [
        k
        for k in config.DESCRIPTIONS
        if k not in config._DEFAULTS
        and k.split(".", 1)[0] not in config.TABLES
        and k.split(".", 1)[0] not in config.TARGETS
    ]
    assert not unknown, f"DESCRIPTIONS names settings config.py does not have: {unknown}"


def test_config_reference_shows_types_defaults_and_variables() -> None:
    from featctl import config

    page = (ROOT / "docs" / "reference" / "config.md").read_text(encoding="utf-8")
    for key in config._DEFAULTS:
        assert re.search(rf"^\| `{key}` \| [^|]+ \| [^|]+ \| `FEATCTL_{key.upper()}` \|", page, re.M), key
    for table in (*config.TABLES, *config.TARGETS):
        assert f"### [{table}]" in page
    # A Yandex variable users set, from the stack's variables.tf, with its default.
    assert re.search(r"^\| `zone` \| `string` \| `\"ru-central1-a\"` \|", page, re.M)
    # Variables featctl manages are not offered.
    assert "| `ssh_public_key` |" not in page


def test_exit_codes_page_has_every_code() -> None:
    from featctl.errors import ExitCode

    page = (ROOT / "docs" / "reference" / "exit-codes.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| `{int(code)}` | `{code.name}` |" in page
