"""What a gemini-batch command was given for dbt, as dbt's arguments: the project and
target, the selection, and the flags of a build's dbt stages. One place for the command
line (``cli/``) and the Airflow operator (``airflow/operators.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def split_selection(values: tuple[tuple[str, ...] | str, ...]) -> tuple[str, ...]:
    """`-s a b`, `-s "a b"` and `-s a -s b` mean the same, as in dbt."""
    flat = [item for value in values for item in ((value,) if isinstance(value, str) else value)]
    return tuple(part for item in flat for part in item.split())


def run_flags(
    extra: Sequence[str] = (), *, full_refresh: bool = False, threads: int | None = None,
    fail_fast: bool = False,
) -> tuple[str, ...]:
    """The dbt arguments of a build's flags (the command's options, the Airflow
    operator's parameters) after ``extra`` (passed to dbt as they are)."""
    flags = list(extra)
    if full_refresh:
        flags.append("--full-refresh")
    if threads is not None:
        flags += ["--threads", str(threads)]
    if fail_fast:
        flags.append("--fail-fast")
    return tuple(flags)


@dataclass(frozen=True)
class DbtOptions:
    """The dbt arguments a gemini-batch command was given."""

    project_dir: str | None = None
    profiles_dir: str | None = None
    target: str | None = None
    profile: str | None = None
    vars: str | None = None
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selector: str | None = None
    state: str | None = None
    # dbt's deferral flags: each stage gets them (with --state) as dbt takes them.
    defer: bool | None = None
    favor_state: bool | None = None
    defer_state: str | None = None
    # Passed as they are to the `dbt run|build` of each stage (--full-refresh, --threads...).
    extra: tuple[str, ...] = ()

    def common_args(self) -> list[str]:
        """Arguments every invocation gets: where the project is and which target."""
        args: list[str] = []
        for flag, value in (
            ("--project-dir", self.project_dir),
            ("--profiles-dir", self.profiles_dir),
            ("--target", self.target),
            ("--profile", self.profile),
            ("--vars", self.vars),
        ):
            if value is not None:
                args += [flag, value]
        return args

    def selection_args(self) -> list[str]:
        args: list[str] = []
        if self.select:
            args += ["--select", *self.select]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        if self.selector:
            args += ["--selector", self.selector]
        return [*args, *self.state_args()]

    def state_args(self) -> list[str]:
        """--state and the deferral flags, for the selection and every stage."""
        args: list[str] = []
        for flag, value in (("--state", self.state), ("--defer-state", self.defer_state)):
            if value:
                args += [flag, value]
        for flag, value in (("defer", self.defer), ("favor-state", self.favor_state)):
            if value is not None:
                args.append(f"--{flag}" if value else f"--no-{flag}")
        return args

    @property
    def deferred_to(self) -> str | None:
        """The state directory whose manifest --defer reads (--defer-state, else
        --state), or None without --defer."""
        return (self.defer_state or self.state) if self.defer else None


__all__ = ["DbtOptions", "run_flags", "split_selection"]
