"""A configuration directory: DIR/ha.cf and DIR/authkeys, read and checked together."""

from __future__ import annotations

import os

from hastack.config.authkeys import read_authkeys_file
from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.hacf import read_hacf_file
from hastack.config.model import ClusterConfig, ConfigWarning

HACF = "ha.cf"
AUTHKEYS = "authkeys"


def _read(
    directory: str,
) -> tuple[ClusterConfig | None, list[ConfigProblem], list[ConfigWarning]]:
    if not os.path.isdir(directory):
        return (
            None,
            [
                ConfigProblem(
                    None,
                    f"{directory}: not a configuration directory "
                    f"(hastack config init -c {directory} --node NAME ... writes one)",
                )
            ],
            [],
        )
    hacf, hacf_problems, hacf_warnings = read_hacf_file(os.path.join(directory, HACF))
    keys, key_problems, key_warnings = read_authkeys_file(os.path.join(directory, AUTHKEYS))
    problems = [*hacf_problems, *key_problems]
    warnings = [*hacf_warnings, *key_warnings]
    if problems or hacf is None or keys is None:
        return None, problems, warnings
    return ClusterConfig(directory, hacf, keys, tuple(warnings)), problems, warnings


def check_config(directory: str) -> tuple[list[ConfigProblem], list[ConfigWarning]]:
    """Every problem and every warning of every file in the directory (for
    `hastack config check`: exit 0 when the first list is empty, else 1)."""
    _, problems, warnings = _read(directory)
    return problems, warnings


def load_config(directory: str) -> ClusterConfig:
    """The whole configuration, or one ConfigError listing the problems of every file."""
    config, problems, _ = _read(directory)
    if problems or config is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{directory}: not usable")])
    return config
