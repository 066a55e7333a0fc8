"""A dbt project driven through dbt's Python API: parse, select, stages, the target.

Talks to dbt only (``dbtRunner``, one invocation at a time, as dbt requires): a parse
gives the manifest, ``dbt ls`` resolves the user's selection with dbt's own selector
logic, and the selected nodes are cut into stages. Stage L holds the nodes whose inputs
are final once the batch models of lower stages have their answers; ``build`` runs the
batch models' jobs after each stage. The tests on a batch model's ``request`` column
read no answer: they run in the model's own stage, before its jobs, and gate them.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from gemini_batch.build.dbt_interrupt import interrupt_quietly
from gemini_batch.build.dbt_options import DbtOptions
from gemini_batch.clients.endpoints import is_local
from gemini_batch.errors import ConfigError, DbtError, DbtParseError
from gemini_batch.rules.config import BatchModel

MATERIALIZATION = "gemini_batch"
PACKAGE = "gemini_batch"  # the dbt package's name, which scopes its vars
# Node types `dbt build` executes; `dbt run` executes models only.
BUILD_RESOURCE_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test", "function"})


@dataclass(frozen=True)
class DbtTarget:
    """BigQuery connection of the dbt target (profiles.yml), as dbt-bigquery reads it."""

    project: str  # execution project: where queries and Vertex jobs run
    data_project: str  # the target's database: where the ledger lives
    dataset: str
    location: str | None
    api_endpoint: str | None
    credentials: Any  # dbt-bigquery's BigQueryCredentials

    def google_credentials(self) -> Any:
        """The credentials dbt uses (keyfile, oauth, impersonation...); None for an
        emulator's endpoint (``clients.endpoints.is_local``), which takes anonymous ones.
        A private ``https://`` endpoint gets them too."""
        if is_local(self.api_endpoint):
            return None
        from dbt.adapters.bigquery.credentials import create_google_credentials

        return create_google_credentials(self.credentials)


# The column of a batch model that holds the request: tests on it gate the model's jobs.
REQUEST_COLUMN = "request"
# Statuses of a node result that make an invocation fail.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})


def _failure_message(result: Any, what: str) -> str:
    """dbt's own words for a failed invocation."""
    if result.exception is not None:
        # dbt wraps some errors ("Error parsing inline query"): the cause says what.
        causes, error = [], result.exception
        while error is not None and len(causes) < 5:
            causes.append(str(error).strip())
            error = error.__cause__ or error.__context__
        return f"{what} failed: {': '.join(dict.fromkeys(c for c in causes if c))}"
    lines = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", ""))
        if status in FAILED_STATUSES:
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", "?")
            lines.append(f"  {name}: {status}: {node_result.message}")
    detail = "\n".join(lines) or "  see dbt's messages above"
    return f"{what} failed:\n{detail}"


class DbtProject:
    """A dbt project driven through ``dbtRunner``: parse, select, run stages.

    dbtRunner is not safe for two invocations at once, so only the caller's thread uses
    it, one invocation after another.
    """

    def __init__(self, options: DbtOptions) -> None:
        from dbt.cli.main import dbtRunner

        self.options = options
        self._runner_class = dbtRunner
        self.manifest: Any = None
        self.runner: Any = None
        self.invocation_id: str | None = None
        self._vars: dict[str, Any] | None = None

    def _invoke(self, args: list[str], what: str, *, error: type[DbtError] = DbtError,
                tolerated: frozenset[str] = frozenset()) -> Any:
        """Run one dbt invocation; ``error`` when it fails, unless every node that failed
        is one of ``tolerated`` (the caller reads their results). Ctrl-C while dbt runs
        is a KeyboardInterrupt, not a dbt failure (dbt's traceback is not printed)."""
        with interrupt_quietly() as interrupted:
            result = self.runner.invoke(args)
        if interrupted.is_set() or isinstance(result.exception, KeyboardInterrupt):
            raise KeyboardInterrupt
        # An invocation leaves cycles of its own objects (its graph, adapters, events)
        # behind; collected now, the process's next steps reuse their memory instead of
        # growing past them (about 10 MB of the build's peak).
        gc.collect()
        if not result.success and not (
            result.exception is None and tolerated
            and {node_result.node.unique_id for node_result in _failed(result)} <= tolerated
        ):
            raise error(_failure_message(result, what))
        from dbt_common.invocation import get_invocation_id

        self.invocation_id = get_invocation_id()
        return result

    @classmethod
    def parsed(cls, options: DbtOptions) -> DbtProject:
        """The project of ``options``, parsed: how every command opens it."""
        project = cls(options)
        project.parse()
        return project

    def parse(self) -> None:
        """Parse the project (partial parsing applies) and keep the manifest for reuse."""
        self.runner = self._runner_class()
        result = self._invoke(["parse", *self.options.common_args(), "--quiet"], "dbt parse",
                              error=DbtParseError)
        self.manifest = result.result
        # Later invocations reuse it instead of parsing again.
        self.runner = self._runner_class(manifest=self.manifest)

    def _profile(self) -> Any:
        """The dbt profile of the target, through dbt's own loader (env_var, vars, --target)."""
        from dbt.config.runtime import load_profile
        from dbt.flags import get_flags

        flags = get_flags()
        return load_profile(
            self._root(), dict(flags.VARS or {}), flags.PROFILE, flags.TARGET
        )

    def _root(self) -> str:
        from dbt.flags import get_flags

        return str(get_flags().PROJECT_DIR or self.options.project_dir or ".")

    def target(self) -> DbtTarget:
        """The BigQuery target of the profile; ConfigError if it is not BigQuery."""
        profile = self._profile()
        credentials = profile.credentials
        if credentials.type != "bigquery":
            raise ConfigError(
                f"Target {profile.target_name!r} of profile {profile.profile_name!r} is "
                f"{credentials.type!r}: gemini-batch needs a BigQuery target."
            )
        return DbtTarget(
            project=credentials.execution_project or credentials.database,
            data_project=credentials.database,
            dataset=credentials.schema,
            location=credentials.location,
            api_endpoint=credentials.api_endpoint,
            credentials=credentials,
        )

    @property
    def vars(self) -> dict[str, Any]:
        """The vars the package's settings read, as a model of the project sees them: the
        project's `vars:` (global, then those scoped to gemini_batch and to the project),
        then `--vars`, which win."""
        if self._vars is None:
            from dbt.config.runtime import load_project
            from dbt.flags import get_flags

            cli_vars = dict(get_flags().VARS or {})
            project = load_project(self._root(), False, self._profile(), cli_vars)
            declared = project.vars.to_dict()
            self._vars = {
                **declared,
                **(declared.get(PACKAGE) or {}),
                **(declared.get(project.project_name) or {}),
                **cli_vars,
            }
        return self._vars

    def node(self, unique_id: str) -> Any:
        for collection in ("nodes", "unit_tests", "functions"):
            found = getattr(self.manifest, collection, {}).get(unique_id)
            if found is not None:
                return found
        raise KeyError(unique_id)

    def _graph_ids(self) -> list[str]:
        ids: list[str] = []
        for collection in ("nodes", "unit_tests", "functions"):
            ids.extend(getattr(self.manifest, collection, {}) or {})
        return ids

    def is_batch_model(self, unique_id: str) -> bool:
        node = self.node(unique_id)
        return (
            getattr(node, "resource_type", "") == "model"
            and node.config.materialized == MATERIALIZATION
        )

    def batch_model(self, unique_id: str) -> BatchModel:
        return BatchModel.from_manifest_node(self.node(unique_id).to_dict())

    def all_batch_models(self) -> list[str]:
        return [uid for uid in self.manifest.nodes if self.is_batch_model(uid)]

    def find_model(self, name: str) -> BatchModel:
        """A batch model by name or unique_id; ConfigError listing the batch models if none."""
        batch_ids = self.all_batch_models()
        for uid in batch_ids:
            if name in (uid, self.node(uid).name):
                return self.batch_model(uid)
        known = ", ".join(sorted(self.node(uid).name for uid in batch_ids))
        raise ConfigError(
            f"No batch model (materialized='gemini_batch') named {name!r} in this project. "
            f"Batch models: {known or 'none'}."
        )

    def select(self, command: str) -> list[str]:
        """Unique ids the user's selection picks for ``command``, by dbt's own rules."""
        args = ["ls", *self.options.common_args(), *self.options.selection_args(),
                "--output", "json", "--output-keys", "unique_id", "--log-level", "none"]
        if command == "run":
            args += ["--resource-type", "model"]
        result = self._invoke(args, "dbt ls (selection)")
        selected = [json.loads(line)["unique_id"] for line in result.result or []]
        return [uid for uid in selected if self._executable(uid)]

    def _executable(self, unique_id: str) -> bool:
        try:
            node = self.node(unique_id)
        except KeyError:  # sources, exposures, metrics: nothing to run
            return False
        return str(node.resource_type) in BUILD_RESOURCE_TYPES

    def stages(self, selected: Sequence[str]) -> list[Stage]:
        """Cut the selected nodes into levels (see the module docstring)."""
        chosen = set(selected)
        batch = {uid for uid in chosen if self.is_batch_model(uid)}
        graph = {uid: self._parents(uid) for uid in self._graph_ids()}
        level: dict[str, int] = {}
        ready: dict[str, int] = {}  # level after which a node's data is final
        gates: dict[str, str] = {}  # request test -> the batch model whose jobs it gates
        for uid in TopologicalSorter(graph).static_order():
            parents = [p for p in graph.get(uid, ()) if p in ready]
            gated = self._request_test_of(uid, batch)
            if uid in graph and str(self.node(uid).resource_type) == "unit_test":
                # dbt runs a unit test before building its model: same stage as the model.
                lvl = max((level[p] for p in parents), default=0)
            elif gated is not None:
                # Reads the requests, not the answers: beside the model, before its jobs
                # (unless another of its inputs is final only later).
                lvl = max((level[p] if p == gated else ready[p] for p in parents), default=0)
                if lvl == level[gated]:
                    gates[uid] = gated
            else:
                lvl = max((ready[p] for p in parents), default=0)
            level[uid] = lvl
            ready[uid] = lvl + 1 if uid in batch else lvl
        stages: list[Stage] = []
        for lvl in range(max((level[u] for u in chosen), default=-1) + 1):
            nodes = [u for u in selected if level[u] == lvl]
            models = [u for u in nodes if u in batch]
            if nodes:
                stages.append(Stage(
                    level=lvl, node_ids=tuple(nodes), batch_ids=tuple(models),
                    request_tests=tuple((t, gates[t]) for t in nodes if t in gates),
                ))
        return stages

    def _request_test_of(self, unique_id: str, batch: set[str]) -> str | None:
        """The batch model (of ``batch``) whose ``request`` column the test ``unique_id``
        tests, or None."""
        if unique_id not in self.manifest.nodes:
            return None
        node = self.node(unique_id)
        if str(node.resource_type) != "test":
            return None
        attached = getattr(node, "attached_node", None)
        column = getattr(node, "column_name", None)
        if attached in batch and str(column or "").strip("`\"").lower() == REQUEST_COLUMN:
            return attached
        return None

    def downstream(self, unique_ids: Iterable[str]) -> set[str]:
        """Every node that depends on one of ``unique_ids``, directly or not."""
        children: dict[str, list[str]] = {}
        for uid in self._graph_ids():
            for parent in self._parents(uid):
                children.setdefault(parent, []).append(uid)
        found: set[str] = set()
        todo = list(unique_ids)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def _parents(self, unique_id: str) -> list[str]:
        depends_on = getattr(self.node(unique_id), "depends_on", None)
        return list(getattr(depends_on, "nodes", None) or [])

    def stage_selection(self, node_ids: Iterable[str]) -> list[str]:
        """``--select``/``--exclude`` arguments that pick exactly ``node_ids``.

        dbt has no unique_id selector; a full ``fqn:`` is exact except that it also picks
        nodes whose fqn extends it (a folder named like a model). Those are found with
        dbt's own fqn matcher and excluded.
        """
        from dbt.graph.selector_methods import QualifiedNameSelectorMethod

        wanted = set(node_ids)
        everything = set(self._graph_ids())
        matcher = QualifiedNameSelectorMethod(self.manifest, None, [])
        selectors, picked = [], set()
        for uid in sorted(wanted):
            selector = ".".join(self.node(uid).fqn)
            selectors.append(f"fqn:{selector}")
            picked.update(matcher.search(everything, selector))
        args = ["--select", *selectors]
        extra = sorted(picked - wanted)
        if extra:
            args += ["--exclude", *(f"fqn:{'.'.join(self.node(u).fqn)}" for u in extra)]
        return args

    def run_stage(self, command: str, stage: Stage, total: int) -> list[Any]:
        """Run one stage. The results of its request tests that did not pass (failed,
        warned or errored: the caller decides); any other failure is a DbtError."""
        args = [command, *self.options.common_args(), *self.stage_selection(stage.node_ids),
                *self.options.state_args(), "--indirect-selection", "empty",
                *self.options.extra]
        gates = {test for test, _ in stage.request_tests}
        result = self._invoke(args, f"dbt {command} (stage {stage.level + 1} of {total})",
                              tolerated=frozenset(gates))
        return [
            node_result for node_result in getattr(result.result, "results", None) or []
            if node_result.node.unique_id in gates
            and str(node_result.status) in (*FAILED_STATUSES, "warn")
        ]

    def run_model(self, unique_id: str) -> str | None:
        """`dbt run` of one model (its materialization again: route auto answers what is
        pending through AI.GENERATE, within its cap). The invocation's id."""
        self._invoke(["run", *self.options.common_args(), *self.stage_selection([unique_id]),
                      *self.options.state_args(), "--indirect-selection", "empty"],
                     f"dbt run --select {self.node(unique_id).name}")
        return self.invocation_id

    def compile(self, unique_ids: Sequence[str]) -> dict[str, str]:
        """The compiled SQL of ``unique_ids`` (models), as a run would execute it."""
        if not unique_ids:
            return {}
        result = self._invoke(
            ["compile", *self.options.common_args(), *self.stage_selection(unique_ids),
             "--indirect-selection", "empty", "--log-level", "none"], "dbt compile")
        return {
            node_result.node.unique_id: node_result.node.compiled_code
            for node_result in getattr(result.result, "results", None) or []
            if node_result.node.unique_id in unique_ids
        }

    def render(self, jinja: str) -> str:
        """``jinja`` compiled as an inline query of the project (its macros, its target):
        SQL a command runs itself."""
        result = self._invoke(
            ["compile", *self.options.common_args(), "--inline", jinja, "--log-level", "none"],
            "dbt compile --inline")
        return str(result.result.results[0].node.compiled_code)

    def relation(self, unique_id: str) -> str | None:
        """``project.dataset.table`` of a model, seed, snapshot or source (None: an
        ephemeral model, or a node that is no relation)."""
        node = self.manifest.sources.get(unique_id) or self.node(unique_id)
        if str(getattr(node, "resource_type", "")) not in ("model", "seed", "snapshot",
                                                            "source"):
            return None
        if getattr(node.config, "materialized", None) == "ephemeral":
            return None
        name = getattr(node, "identifier", None) if str(node.resource_type) == "source" \
            else getattr(node, "alias", None)
        return f"{node.database}.{node.schema}.{name or node.name}"

    def inputs(self, unique_id: str) -> list[str]:
        """The relations a model reads (through ephemeral models), by unique_id."""
        found: list[str] = []
        todo = list(self._parents(unique_id))
        while todo:
            uid = todo.pop(0)
            if uid in found:
                continue
            found.append(uid)
            if uid not in self.manifest.sources and self.relation(uid) is None:
                todo.extend(self._parents(uid))  # ephemeral: what it reads
        return [uid for uid in found if uid in self.manifest.sources
                or self.relation(uid) is not None]

    def upstream_batch_models(self, unique_id: str) -> list[str]:
        """The batch models ``unique_id`` reads the answers of (the nearest ones on each
        path up)."""
        found: list[str] = []
        seen: set[str] = set()
        todo = list(self._parents(unique_id))
        while todo:
            uid = todo.pop(0)
            if uid in seen or uid in self.manifest.sources:
                continue
            seen.add(uid)
            if self.is_batch_model(uid):
                found.append(uid)
            else:
                todo.extend(self._parents(uid))
        return found

    def run_all(self, command: str) -> None:
        """No batch model selected: exactly what `dbt <command>` would do."""
        self._invoke(
            [command, *self.options.common_args(), *self.options.selection_args(),
             *self.options.extra],
            f"dbt {command}",
        )


def _failed(result: Any) -> list[Any]:
    """The node results of an invocation that made it fail."""
    return [node_result for node_result in getattr(result.result, "results", None) or []
            if str(node_result.status) in FAILED_STATUSES]


@dataclass(frozen=True)
class Stage:
    level: int
    node_ids: tuple[str, ...]
    batch_ids: tuple[str, ...]  # batch models built in this stage, whose jobs follow it
    # (test, batch model): the tests on a batch model's request column in this stage,
    # which run before its jobs and gate them.
    request_tests: tuple[tuple[str, str], ...] = ()

    def without(self, skipped: set[str]) -> Stage:
        """This stage with the nodes of ``skipped`` left out."""
        return Stage(
            level=self.level,
            node_ids=tuple(u for u in self.node_ids if u not in skipped),
            batch_ids=tuple(u for u in self.batch_ids if u not in skipped),
            request_tests=tuple(p for p in self.request_tests if p[0] not in skipped),
        )


__all__ = [
    "BUILD_RESOURCE_TYPES",
    "MATERIALIZATION",
    "REQUEST_COLUMN",
    "DbtProject",
    "DbtTarget",
    "Stage",
]
