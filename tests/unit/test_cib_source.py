"""Where a starting node's CIB comes from: a cib.xml that turns fencing on may rely on the fence
devices ha.cf names (`stonith`, `stonith_host`), as a converted heartbeat R1 cluster does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hastack.config.directory import load_config
from hastack.config.errors import ConfigError
from hastack.crm.cib_source import seed_cib
from hastack.crm.haresources import convert_haresources

KEY = "0123456789abcdef0123456789abcdef"
HACF = "node a b\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\n"


def config_dir(tmp_path: Path, hacf: str, haresources: str = "a 10.0.0.50\n") -> Path:
    (tmp_path / "ha.cf").write_text(hacf)
    keys = tmp_path / "authkeys"
    keys.write_text(f"auth 1\n1 sha256 {KEY}\n")
    os.chmod(keys, 0o600)
    # the CIB `hastack convert haresources` writes for a cluster whose ha.cf fences
    cib = convert_haresources(haresources, "haresources", nodes=["a", "b"], fencing=True)
    (tmp_path / "cib.xml").write_bytes(cib)
    return tmp_path


def test_a_fencing_cib_starts_when_ha_cf_names_the_devices(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, HACF + "stonith_host * null a b\n")
    data, origin = seed_cib(load_config(str(directory)))
    assert origin == str(directory / "cib.xml")
    assert b'name="stonith-enabled" value="true"' in data


def test_a_fencing_cib_without_any_device_is_refused(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, HACF)
    with pytest.raises(ConfigError) as caught:
        seed_cib(load_config(str(directory)))
    assert "no stonith resource is defined" in str(caught.value)
