"""Tokenizer and recursive-descent parser for Alluxio's policy language.

Grammar (Alluxio's, extended compatibly with ``unusedFor``, sizes and ``and`` / ``or`` / ``not``)::

    policy    := [NAME ":"] "ufsMigrate" "(" condition ("," action)+ ")"
    condition := DURATION                                  -- short form, same as olderThan(DURATION)
               | "olderThan" "(" DURATION ")" | "unusedFor" "(" DURATION ")"
               | "largerThan" "(" SIZE ")"    | "smallerThan" "(" SIZE ")"
               | ("and" | "or") "(" condition ("," condition)+ ")"
               | "not" "(" condition ")"
    action    := "UFS" "[" MEMBER "]" ":" ("STORE" | "REMOVE")
    DURATION  := digits unit   unit in ms, s, m, h, d (and Alluxio's sec, min, hr, day, ... spellings)
    SIZE      := number [unit] unit in B, KB/KiB/K, MB/MiB/M, GB, TB, PB -- powers of 1024, as in Alluxio

Durations follow Alluxio's policy engine, whose ``olderThan`` reads its argument with
``FormatUtils.parseTimeSize``: a whole number and a unit, ``ms`` / ``s`` / ``m`` / ``h`` / ``d`` or the
long spellings ``millisecond``, ``sec``, ``second``, ``min``, ``minute``, ``hr``, ``hour``, ``day``,
without regard to case. ``m`` is minutes (``ufsMigrate(1m, ...)`` moves files older than a minute).

Case rules. Keywords (``ufsMigrate``, ``olderThan``, ``UFS``, ``STORE``, ...) and units are matched
without regard to case -- no two of them differ only by case, so this is never ambiguous -- and are
printed as Alluxio writes them. As in Alluxio, ``m`` is minutes (``1M`` too: it is never months).
Member names and the policy name are case-sensitive. A duration must carry its unit: Alluxio reads a
bare ``60`` as 60 milliseconds, a surprise we refuse rather than reproduce.

Sizes and durations share :mod:`airflow_hybrid.values`' unit tables and bounds (at most 8 EiB, at most 100 years).
Parsing is linear in the length of the text (a policy with thousands of actions parses in milliseconds).

Semantic checks at parse time: at least one STORE and one REMOVE action (Alluxio also takes a
STORE-only policy, a copy; a migration here always removes its source once the copies are verified), no member both STORE and
REMOVE, no action listed twice. Checking members against a mount is :func:`validate_members`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from airflow_hybrid.policy.model import (
    Action,
    And,
    Condition,
    Duration,
    LargerThan,
    Not,
    OlderThan,
    Operation,
    Or,
    Policy,
    PolicyParseError,
    Size,
    SmallerThan,
    UnusedFor,
)
from airflow_hybrid.values import DURATION_UNITS, MAX_DURATION, MAX_SIZE, SIZE_UNITS

#: Deepest nesting of ``and`` / ``or`` / ``not`` accepted (keeps the recursion far from Python's limit).
MAX_DEPTH = 32
#: Longest number accepted, in characters.
MAX_DIGITS = 24

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_DIGITS = frozenset("0123456789")


class TokenKind(Enum):
    WORD = "word"
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    COLON = ":"
    END = "end of input"


_PUNCTUATION = {kind.value: kind for kind in TokenKind if len(kind.value) == 1}


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        return "end of input" if self.kind is TokenKind.END else f"'{self.text}'"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens: words (``[A-Za-z0-9_.-]+``) and the punctuation ``( ) [ ] , :``."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[ch], ch, i + 1))
            i += 1
        elif ch in _WORD_CHARS:
            start = i
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            tokens.append(Token(TokenKind.WORD, text[start:i], start + 1))
        else:
            raise PolicyParseError(f"unexpected character {ch!r}", i + 1, text)
    tokens.append(Token(TokenKind.END, "", n + 1))
    return tokens


_CONDITIONS = {
    k.lower(): k for k in ("olderThan", "unusedFor", "largerThan", "smallerThan", "and", "or", "not")
}
_EXPECTED_CONDITION = (
    "a condition (olderThan, unusedFor, largerThan, smallerThan, and, or, not, or a duration like 1m)"
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    # -- token helpers ----------------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind is not TokenKind.END:
            self.pos += 1
        return token

    def error(self, message: str, token: Token) -> PolicyParseError:
        return PolicyParseError(message, token.column, self.text)

    def expect(self, kind: TokenKind) -> Token:
        token = self.peek()
        if token.kind is not kind:
            raise self.error(f"expected '{kind.value}' but found {token.describe()}", token)
        return self.advance()

    def expect_keyword(self, keyword: str) -> Token:
        token = self.peek()
        if token.kind is not TokenKind.WORD or token.text.lower() != keyword.lower():
            raise self.error(f"expected '{keyword}' but found {token.describe()}", token)
        return self.advance()

    # -- grammar ----------------------------------------------------------------------------------
    def policy(self) -> Policy:
        name = None
        if self.peek().kind is TokenKind.WORD and self.peek(1).kind is TokenKind.COLON:
            name = self.advance().text
            self.advance()
        head = self.expect_keyword("ufsMigrate")
        self.expect(TokenKind.LPAREN)
        condition = self.condition(depth=0)
        actions: dict[str, Action] = {}  # by member: one action per member, checked in constant time
        while True:
            token = self.peek()
            if token.kind is TokenKind.RPAREN and actions:
                break
            if token.kind is not TokenKind.COMMA:
                wanted = "')' or ','" if actions else "',' and an action such as UFS[s3]:STORE"
                raise self.error(f"expected {wanted} but found {token.describe()}", token)
            self.advance()
            action = self.action(actions)
            actions[action.member] = action
        self.expect(TokenKind.RPAREN)
        end = self.peek()
        if end.kind is not TokenKind.END:
            raise self.error(f"expected end of input but found {end.describe()}", end)
        policy = Policy(condition=condition, actions=tuple(actions.values()), name=name)
        if not policy.store_members:
            raise self.error("policy has no STORE action (add one such as UFS[s3]:STORE)", head)
        if not policy.remove_members:
            raise self.error("policy has no REMOVE action (add one such as UFS[hdfs]:REMOVE)", head)
        return policy

    def condition(self, depth: int) -> Condition:
        token = self.peek()
        if token.kind is not TokenKind.WORD:
            raise self.error(f"expected {_EXPECTED_CONDITION} but found {token.describe()}", token)
        if token.text[0] in _DIGITS:
            return OlderThan(self.duration())
        keyword = _CONDITIONS.get(token.text.lower())
        if keyword is None:
            raise self.error(f"expected {_EXPECTED_CONDITION} but found {token.describe()}", token)
        if depth >= MAX_DEPTH:
            raise self.error(f"conditions are nested more than {MAX_DEPTH} deep", token)
        self.advance()
        self.expect(TokenKind.LPAREN)
        result: Condition
        if keyword == "olderThan":
            result = OlderThan(self.duration())
        elif keyword == "unusedFor":
            result = UnusedFor(self.duration())
        elif keyword == "largerThan":
            result = LargerThan(self.size())
        elif keyword == "smallerThan":
            result = SmallerThan(self.size())
        elif keyword == "not":
            result = Not(self.condition(depth + 1))
        else:
            operands = [self.condition(depth + 1)]
            while self.peek().kind is TokenKind.COMMA:
                self.advance()
                operands.append(self.condition(depth + 1))
            if len(operands) < 2 and self.peek().kind is TokenKind.RPAREN:
                raise self.error(f"{keyword}(...) needs at least two conditions", self.peek())
            result = (And if keyword == "and" else Or)(tuple(operands))
        self.expect(TokenKind.RPAREN)
        return result

    def _number_and_unit(self, what: str, units: dict[str, int], example: str) -> tuple[Token, str, str]:
        token = self.peek()
        if token.kind is not TokenKind.WORD or token.text[0] not in _DIGITS:
            raise self.error(f"expected a {what} such as {example} but found {token.describe()}", token)
        text = token.text
        split = 0
        while split < len(text) and (text[split] in _DIGITS or text[split] == "."):
            split += 1
        number, unit = text[:split], text[split:]
        if len(number) > MAX_DIGITS:
            raise self.error(f"number in {what} '{text}' is too long", token)
        if unit and unit.lower() not in units:
            raise self.error(f"unknown unit '{unit}' in {what} '{text}'", token)
        self.advance()
        return token, number, unit.lower()

    def duration(self) -> Duration:
        token, number, unit = self._number_and_unit("duration", DURATION_UNITS, "1m")
        if not number.isdigit():
            raise self.error(f"duration '{token.text}' must be a whole number of its unit", token)
        if not unit:
            raise self.error(f"duration '{token.text}' needs a unit: ms, s, m, h or d", token)
        milliseconds = int(number) * DURATION_UNITS[unit]
        if milliseconds > MAX_DURATION * 1000:
            raise self.error(f"duration '{token.text}' is longer than {MAX_DURATION // 86_400}d", token)
        return Duration(milliseconds)

    def size(self) -> Size:
        token, number, unit = self._number_and_unit("size", SIZE_UNITS, "128MB")
        if number.count(".") > 1 or number.endswith("."):
            raise self.error(f"size '{token.text}' is not a number", token)
        size = Decimal(number) * SIZE_UNITS[unit]
        if size > MAX_SIZE:
            raise self.error(f"size '{token.text}' is larger than 8 EiB", token)
        return Size(int(size))

    def action(self, previous: dict[str, Action]) -> Action:
        self.expect_keyword("UFS")
        self.expect(TokenKind.LBRACKET)
        member_token = self.peek()
        if member_token.kind is not TokenKind.WORD:
            raise self.error(f"expected a member name but found {member_token.describe()}", member_token)
        member = self.advance().text
        self.expect(TokenKind.RBRACKET)
        self.expect(TokenKind.COLON)
        op_token = self.peek()
        try:
            operation = Operation(op_token.text.upper()) if op_token.kind is TokenKind.WORD else None
        except ValueError:
            operation = None
        if operation is None:
            raise self.error(f"expected STORE or REMOVE but found {op_token.describe()}", op_token)
        self.advance()
        action = Action(member, operation)
        earlier = previous.get(member)
        if earlier == action:
            raise self.error(f"{action.to_text()} is listed twice", member_token)
        if earlier is not None:
            raise self.error(f"member '{member}' cannot be both STORE and REMOVE", member_token)
        return action


def parse_policy(text: str) -> Policy:
    """Parse an Alluxio-style policy; raise :class:`PolicyParseError` naming the column on bad input."""
    if not isinstance(text, str):
        raise TypeError(f"policy text must be a str, got {type(text).__name__}")
    return _Parser(text).policy()


def parse_duration(text: str) -> Duration:
    """Parse a single duration such as ``1m`` or ``2d``."""
    parser = _Parser(text)
    result = parser.duration()
    parser.expect(TokenKind.END)
    return result


def parse_size(text: str) -> Size:
    """Parse a single size such as ``128MB`` or ``1GiB``."""
    parser = _Parser(text)
    result = parser.size()
    parser.expect(TokenKind.END)
    return result


def as_policy(policy: Policy | str) -> Policy:
    """``policy`` itself, or parsed when given as text."""
    return policy if isinstance(policy, Policy) else parse_policy(policy)
