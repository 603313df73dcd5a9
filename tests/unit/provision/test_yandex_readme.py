"""terraform/yandex/README.md stays true to the stack it documents."""

from __future__ import annotations

import re

import hcl2
import pytest

from tests.unit.provision.hclstack import load_dir, named
from tests.unit.provision.tfeval import YANDEX_DIR

README = (YANDEX_DIR / "README.md").read_text(encoding="utf-8")
MIRROR = "https://terraform-mirror.yandexcloud.net/"


def _hcl_blocks() -> list[str]:
    return re.findall(r"```hcl\n(.*?)```", README, re.DOTALL)


def test_readme_shows_a_working_provider_mirror_config() -> None:
    """The ~/.terraformrc text for when registry.terraform.io is unreachable (Yandex's mirror)."""
    configs = [hcl2.loads(text) for text in _hcl_blocks() if "provider_installation" in text]
    assert len(configs) == 1, "one provider_installation example"
    [install] = configs[0]["provider_installation"]
    [mirror] = install["network_mirror"]
    [direct] = install["direct"]
    assert mirror["url"].strip('"') == MIRROR
    assert [p.strip('"') for p in mirror["include"]] == ["registry.terraform.io/*/*"]
    assert [p.strip('"') for p in direct["exclude"]] == ["registry.terraform.io/*/*"]


@pytest.mark.parametrize("kind", ["variable", "output"])
def test_readme_names_every_input_and_output(kind: str) -> None:
    names = named(load_dir(YANDEX_DIR), kind)
    # `name` in the text, or a key of the featctl.toml example.
    missing = [n for n in names if f"`{n}`" not in README and not re.search(rf"^{n}\s*=", README, re.MULTILINE)]
    assert not missing, f"README.md does not mention {kind}s {missing}"


def test_readme_provider_version_matches_versions_tf() -> None:
    [terraform] = load_dir(YANDEX_DIR)["terraform"]
    version = terraform["required_providers"][0]["yandex"]["version"]
    assert f"`{version}`" in README
