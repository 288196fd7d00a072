"""drbd.conf's tokens, cut as drbdadm 8.4's scanner cuts them, each with its line and column.

- blanks (space, tab, CR, LF, FF, VT) separate tokens; `#` starts a comment to the end of line;
- `{ } ; : [ ]` are tokens of their own;
- a bare word is made of letters, digits and `/ . _ -` only, at most 128 characters;
- a double-quoted string holds anything but a line break, at most 255 characters; a backslash
  takes the next character literally (`\\"` is a quote, `\\\\` a backslash, `\\n` is an `n`).

Nothing here raises: a run of characters drbdadm would refuse (`abc$%`, `1%eth0`) becomes one
"bad" token that carries what is wrong, and the parser reports it only if it has to read it,
so text inside `skip { ... }` may hold anything but an unterminated string.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["word", "string", "punct", "bad", "eof"]

WORD_CHARS = frozenset(string.ascii_letters + string.digits + "/._-")
PUNCT = frozenset("{};:[]")
BLANKS = frozenset(" \t\r\n\f\v")
MAX_WORD = 128  # drbdadm: "Token too long" past this
MAX_STRING = 255  # drbdadm: "Double quoted string too long" past this


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # a string's value, without its quotes and escapes
    line: int
    column: int
    error: str = ""  # what is wrong with a "bad" token

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.text == char

    def is_word(self, *words: str) -> bool:
        """A bare word (never a quoted string: drbdadm's keywords are never quoted)."""
        return self.kind == "word" and (not words or self.text in words)

    @property
    def is_value(self) -> bool:
        return self.kind in ("word", "string")

    def show(self) -> str:
        """The token as a message quotes it."""
        if self.kind == "eof":
            return "the end of the file"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f'"{text}"' if self.kind == "string" else f"'{text}'"


def tokenize(text: str) -> list[Token]:
    """All tokens of `text`, ending with one "eof" token."""
    tokens: list[Token] = []
    i, line, line_start, n = 0, 1, 0, len(text)
    while i < n:
        char = text[i]
        column = i - line_start + 1
        if char == "\n":
            line, line_start = line + 1, i + 1
            i += 1
        elif char in BLANKS:
            i += 1
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif char in PUNCT:
            tokens.append(Token("punct", char, line, column))
            i += 1
        elif char == '"':
            token, i = _quoted(text, i, line, column)
            tokens.append(token)
        else:
            start = i
            while i < n and text[i] not in BLANKS and text[i] not in PUNCT and text[i] not in '"#':
                i += 1
            tokens.append(_word(text[start:i], line, column))
    tokens.append(Token("eof", "", line, n - line_start + 1))
    return tokens


def _word(run: str, line: int, column: int) -> Token:
    bad = sorted({c for c in run if c not in WORD_CHARS})
    if bad:
        shown = " ".join(repr(c) for c in bad[:5])
        return Token(
            "bad",
            run,
            line,
            column,
            f"{shown} may appear only inside a double-quoted string (outside quotes drbd.conf "
            "allows letters, digits and / . _ -)",
        )
    if len(run) > MAX_WORD:
        return Token("bad", run, line, column, f"a word longer than {MAX_WORD} characters")
    return Token("word", run, line, column)


def _quoted(text: str, i: int, line: int, column: int) -> tuple[Token, int]:
    """The string starting at text[i] == '"': (its token, the index after it)."""
    value: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] != "\n":
            value.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            joined = "".join(value)
            if len(joined) > MAX_STRING:
                return Token(
                    "bad",
                    joined,
                    line,
                    column,
                    f"a quoted string longer than {MAX_STRING} characters",
                ), i + 1
            return Token("string", joined, line, column), i + 1
        if char == "\n":
            break
        value.append(char)
        i += 1
    # The rest of the line is swallowed, so that one missing quote makes one error.
    return Token(
        "bad",
        "".join(value),
        line,
        column,
        "a quoted string without its closing '\"' (a string must end on the line it starts)",
    ), i
