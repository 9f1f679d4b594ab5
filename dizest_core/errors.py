"""The exception tree of dizest: every error the engine raises derives from DizestError.

    DizestError
    ├── WorkflowError            a package is wrong (bad JSON, unknown app, cycle, ...)
    │   └── ValidationError      carries every Problem found at once
    ├── UnknownFlowError         a flow id that the package does not have (also LookupError)
    ├── ExecutionError           running a flow failed outside user code (could not start, ...)
    │   └── ProtocolError        a flow child sent something that is not a valid message
    ├── InputError               a run input, option or package over a limit (see `limits`)
    │   └── UnknownInputError    a run input no flow of the workflow reads (`run_inputs`)
    ├── StoreError               the output store could not read or write
    │   └── OutputNotFound       (also LookupError)
    ├── ConfigError              a DIZEST_* setting is malformed
    └── AuthError                reserved for the service

Errors cross process boundaries as data (`ErrorInfo`), never as pickled exceptions.
HTTP status codes are mapped once, at the API edge; nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class DizestError(Exception):
    """Base of every error raised by dizest."""


class WorkflowError(DizestError):
    """A workflow package cannot be used as given."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a package, naming where it is."""

    code: str
    message: str
    flow: str | None = None
    app: str | None = None
    field: str | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def __str__(self) -> str:
        where = ", ".join(
            f"{k} {v!r}"
            for k, v in (("flow", self.flow), ("app", self.app), ("field", self.field))
            if v
        )
        return f"{self.message} ({where})" if where else self.message


class ValidationError(WorkflowError):
    """A package has one or more problems; `problems` lists all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.headline(problems)}\n{lines}")

    @staticmethod
    def headline(problems: list[Problem]) -> str:
        """The first line of the message (what the API answers, what the CLI prints first)."""
        return f"invalid workflow: {len(problems)} problem(s)"


class InvalidOptions(ValidationError, ValueError):
    """Run options or `"dizest"` options of a package with bad values; `problems` names the flow
    (or app) and the field of each. A ValueError too, for callers that catch bad input so.
    Checked by `dizest_core.options` (local runs and submits alike)."""

    SHOWN = 3  # problems the headline spells out

    @staticmethod
    def headline(problems: list[Problem]) -> str:
        """`invalid run options: retries: must be ...` when only the run's options are wrong,
        else `invalid options: flow 'a' dizest.timeout: ...`: what is wrong, on one line."""
        run = all((p.field or "").startswith("options.") for p in problems)
        said = "; ".join(_option_text(p, run) for p in problems[: InvalidOptions.SHOWN])
        more = len(problems) - InvalidOptions.SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        return f"invalid {'run ' if run else ''}options: {said}{tail}"


def _option_text(problem: Problem, run: bool) -> str:
    where = " ".join(f"{k} {v!r}" for k, v in (("flow", problem.flow), ("app", problem.app)) if v)
    field = (problem.field or "").removeprefix("options." if run else "")
    name = f"{where} {field}".strip()
    return f"{name}: {problem.message}" if name else problem.message


class UnknownFlowError(WorkflowError, LookupError):
    """A flow id that is not in the package."""


class ExecutionError(DizestError):
    """The engine could not run a flow (not an error in the user's code)."""


class ProtocolError(ExecutionError):
    """A flow child sent a frame or record that is not a well-formed message (broken or
    hostile user code); the engine ends that flow in error and carries on."""


class InputError(DizestError, ValueError):
    """A value a user gave a run breaks a limit of `dizest_core.limits` (too deep, too large,
    not JSON); `code` names what broke (`input_too_deep`, ...), `details` the limit and the
    value's name. A ValueError too, for callers that catch bad input so."""

    def __init__(self, code: str, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class UnknownInputError(InputError):
    """Run inputs no flow of the workflow reads (`dizest_core.run_inputs.check`); `details`
    names them (`unknown`) and the inputs the workflow's flows declare (`inputs`)."""


class StoreError(DizestError):
    """The output store failed."""


class OutputNotFound(StoreError, LookupError):
    """An output that was never stored (or has expired)."""


class ConfigError(DizestError):
    """A setting is missing or malformed."""


class AuthError(DizestError):
    """Authentication or authorization failed (used by the service)."""


@dataclass(frozen=True)
class ErrorInfo:
    """An error as data, safe to send between processes and to show to users."""

    type: str
    message: str
    traceback: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
