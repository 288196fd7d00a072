"""Configuration errors: every one names the file, the line and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass

from hastack.config.model import Source


@dataclass(frozen=True)
class ConfigProblem:
    source: Source | None
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class ConfigError(Exception):
    """One or more problems in a configuration; nothing of it may be applied."""

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(None, problems)]
        elif isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
