"""dvc.yaml against the code: each stage's deps cover the code its command runs, its
params list covers the settings that code reads, and no stage imports another stage.

A code change DVC does not see leaves a stale stage that ``dvc repro`` calls up to date,
so the deps are computed here from the source, read with ``ast`` (nothing is imported:
no TensorFlow, well under a second).

The code. ``imgclf <name>`` goes through the CLI: cli/common.py's callback (logging
levels, MLflow's log level) and the command in cli/stages.py, which imports
imgclf.stages.<name> and calls its ``run(params)``. They are not deps: what they do changes
what a stage prints, never a file it writes (test_cli_command_only_dispatches checks
the command imports nothing else of imgclf). The closure starts from stages/<name>.py and
follows every import of ``imgclf.*``, package ``__init__.py`` files included and those
inside functions too (they run when called), except:

- imports under ``if TYPE_CHECKING:``, which never run;
- the edges of VALIDATED_BY_CHECK: params.py imports training/network.py in a validator
  of params.yaml. Every stage runs it when it loads params.yaml, but it can only accept
  or reject the file, and the check stage, which every stage waits for, runs it first on
  the same file with the same code; so it is check's dep, not every stage's.

Plus RUN_BY_PATH, code a stage runs without importing it (train logs
serving/model_code.py, by its path, as the served model's code).

The params. In the same modules: ``params.<section>.<key>``; ``params.path("key")`` and
``params.paths.key`` (paths.key, which a ``${paths.key}`` dep or output covers too);
``cfg.<key>`` where ``cfg`` is a section, because a name was assigned one
(``cfg = params.train``) or an argument is annotated with its class (``cfg: Validate``);
a section's own method, as the keys it reads (``params.train.size``: train.image_size);
``params.model_dump()``, as the sections it dumps, unless in a function of PROVENANCE.

What the params check cannot see: a section handed to an argument not annotated with its
class (``Any``, a dict), a section stored in an object and read back through it, a key
chosen at run time (``getattr(cfg, name)`` counts as the whole section; a computed
``params.path(key)`` counts only when ``key`` loops over literal names), and settings
from outside params.yaml (MLFLOW_TRACKING_URI). params.py itself is not read: its
validators are check's, and its fields are the schema. It is coarse the other way: a
module's reads count for every stage whose closure holds it, including functions that
stage never calls, so a stage may have to list a key it only could read. That costs no
rerun where the key also reaches the stage through an upstream output (register lists
model keys that its model card prints; any change to them retrains first).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "imgclf"

# (importer, imported) edges left out of every stage's closure but check's; see the docstring.
VALIDATED_BY_CHECK = {("imgclf.params", "imgclf.training.network")}
# Code a stage runs without importing it: stage -> module -> where the path is written.
RUN_BY_PATH = {"train": {"imgclf.serving.model_code": "imgclf.serving.pyfunc"}}
# Functions whose params.model_dump() records the settings beside an output, computing
# nothing from them; a stage depending on every section for them would rerun (train: for
# minutes) on any change to params.yaml.
PROVENANCE = {
    "log_inputs": "train's MLflow run logs the whole params.yaml it ran with",
    "training_fingerprint": "decides only whether a killed training's backup may be resumed",
    "version_tags": "a registry version's params_digest tag, set when the version is created",
}

# Keys that decide how fast a stage runs, never what it writes: a stage must not rerun for
# them (test_dvc_pipeline changes validate.workers and expects no rerun).
SPEED_ONLY = {
    ("validate", "workers"): "scan processes; tests/integration/test_validate_stage.py shows the same manifest",
}

PARAMS = "<Params>"  # the kind of a name holding the whole Params, beside section names


# --- the code: modules and their imports ------------------------------------------------


def module_file(name: str) -> Path | None:
    """src/imgclf/a/b.py or src/imgclf/a/b/__init__.py for imgclf.a.b; None if not ours."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def tree(name: str) -> ast.Module:
    path = module_file(name)
    assert path is not None, name
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(node: ast.AST, lazy: bool = True) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports under ``node``, minus TYPE_CHECKING blocks; ``lazy``: in functions too."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield from import_nodes(other, lazy)
        elif lazy or not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from import_nodes(child, lazy)


def with_packages(name: str) -> set[str]:
    """``name`` and the packages above it, whose ``__init__.py`` run first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imported(importer: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The imgclf modules one import statement runs."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package
            package = importer if module_file(importer) == SRC.joinpath(*importer.split("."), "__init__.py") else ""
            base = importlib.util.resolve_name("." * node.level + base, package or importer.rpartition(".")[0])
        # `from a import b` runs a, and a.b when b is a module rather than a name in a.
        names = [base] + [f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")]
    found: set[str] = set()
    for name in names:
        if module_file(name) is not None:
            found |= {n for n in with_packages(name) if module_file(n) is not None}
    return found


def closure(roots: Collection[str], skip: Collection[tuple[str, str]] = ()) -> set[str]:
    """Every imgclf module running ``roots`` can import, following ``import_nodes``."""
    seen: set[str] = set()
    todo = [m for root in roots for m in with_packages(root) if module_file(m) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in import_nodes(tree(name)):
            modules = imported(name, node)
            if not any((name, m) in skip for m in modules):  # a skipped import, its packages too
                todo += modules
    return seen


# --- dvc.yaml -------------------------------------------------------------------------


@functools.cache
def dvc_stages() -> dict[str, dict[str, object]]:
    """The stages whose command is ``imgclf <name>``, by name."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: s for name, s in stages.items() if re.fullmatch(rf"imgclf {re.escape(name)}", str(s["cmd"]))}


def entries(stage: dict[str, object], *fields: str) -> list[str]:
    """The paths listed under ``fields`` (deps, outs, ...), bare or with options."""
    found: list[str] = []
    for field in fields:
        for entry in stage.get(field) or []:  # type: ignore[attr-defined]
            found += [entry] if isinstance(entry, str) else list(entry)
    return found


def covered(path: str, deps: list[str]) -> bool:
    """A dep covers a file when it is that file or a folder holding it."""
    return any(path == dep.rstrip("/") or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def stage_modules(name: str) -> set[str]:
    """The modules ``imgclf <name>`` runs, as the docstring says."""
    skip = set() if name == "check" else VALIDATED_BY_CHECK
    roots = {f"imgclf.stages.{name}", *RUN_BY_PATH.get(name, {})}
    return closure(roots, skip)


def relative(name: str) -> str:
    path = module_file(name)
    assert path is not None
    return path.relative_to(ROOT).as_posix()


STAGES = sorted(dvc_stages())


def test_dvc_yaml_has_the_pipeline() -> None:
    # An empty STAGES would pass every test below.
    assert {"check", "validate", "split", "augment", "train", "evaluate", "register"} <= set(STAGES)


@pytest.mark.parametrize("name", STAGES)
def test_stage_code_deps_cover_its_imports(name: str) -> None:
    deps = [d for d in entries(dvc_stages()[name], "deps") if "${" not in d]  # ${...}: data
    missing = sorted(relative(m) for m in stage_modules(name) if not covered(relative(m), deps))
    assert not missing, f"dvc.yaml: stage {name} runs code its deps miss: {', '.join(missing)}"


@pytest.mark.parametrize("name", STAGES)
def test_stage_code_deps_are_code_it_runs(name: str) -> None:
    # A dep left over from a move reruns the stage for nothing, or stops `dvc repro` when
    # its file is gone.
    runs = [relative(m) for m in stage_modules(name)]
    code = [d for d in entries(dvc_stages()[name], "deps") if d.startswith("src/")]
    stale = [d for d in code if not any(covered(path, [d]) for path in runs)]
    assert not stale, f"dvc.yaml: stage {name} depends on code it does not run: {', '.join(stale)}"


def test_the_exceptions_still_stand() -> None:
    """Each exception of the docstring holds for the code as it is, or goes."""
    for modules in RUN_BY_PATH.values():
        for module, where in modules.items():
            leaf = module.rpartition(".")[2] + ".py"
            assert any(isinstance(n, ast.Constant) and n.value == leaf for n in ast.walk(tree(where))), module
    for importer, target in VALIDATED_BY_CHECK:
        assert any(target in imported(importer, n) for n in import_nodes(tree(importer))), (importer, target)
    # What lets check alone depend on them: every other stage runs after it.
    for name in set(STAGES) - {"check"}:
        assert "${paths.params_check}" in entries(dvc_stages()[name], "deps"), name
    dumping = {
        f.name
        for module in closure({f"imgclf.stages.{n}" for n in STAGES})
        for f in ast.walk(tree(module))
        if isinstance(f, ast.FunctionDef)
        and any(isinstance(c, ast.Attribute) and c.attr == "model_dump" for c in ast.walk(f))
    }
    assert set(PROVENANCE) <= dumping, set(PROVENANCE) - dumping


def _command(name: str) -> ast.FunctionDef:
    """The function of cli/stages.py registered as the command ``name``."""
    for node in tree("imgclf.cli.stages").body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "command":
                named = [a.value for a in deco.args if isinstance(a, ast.Constant)]
                if (named[0] if named else node.name.replace("_", "-")) == name:
                    return node
    raise AssertionError(f"cli/stages.py: no command {name}")


@pytest.mark.parametrize("name", STAGES)
def test_cli_command_only_dispatches(name: str) -> None:
    """The ground for leaving the CLI out of the deps: a command hands its stage the params."""
    command = _command(name)
    modules = set().union(*(imported("imgclf.cli.stages", n) for n in import_nodes(command)))
    assert modules - {"imgclf", "imgclf.stages"} == {f"imgclf.stages.{name}"}, (
        f"cli/stages.py: command {name} imports {sorted(modules)}: move that code into the stage"
    )
    runs = [n for n in ast.walk(command) if isinstance(n, ast.Attribute) and n.attr == "run"]
    assert runs, f"cli/stages.py: command {name} does not call its stage's run"


def test_cli_common_only_loads_params() -> None:
    # What every command runs first: params.yaml loaded, TensorFlow imported quietly,
    # errors turned into one line. Anything more would be a dep of every stage.
    modules = set().union(*(imported("imgclf.cli.common", n) for n in import_nodes(tree("imgclf.cli.common"))))
    assert modules <= {"imgclf", "imgclf.errors", "imgclf.params", "imgclf.tfruntime"}, sorted(modules)


@pytest.mark.parametrize("name", STAGES)
def test_no_stage_imports_another_stage(name: str) -> None:
    others = {m for m in closure({f"imgclf.stages.{name}"}) if m.startswith("imgclf.stages.")} - {
        f"imgclf.stages.{name}"
    }
    assert not others, f"stage {name} imports {', '.join(sorted(others))}: move what they share into a core"


def test_benchmarks_import_cores_not_stages() -> None:
    """A benchmark times a core, or a stage as users run it (the CLI): never a stage module
    it would have to reach into."""
    for script in sorted((ROOT / "bench").glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        stages = sorted(n for n in names if n == "imgclf.stages" or n.startswith("imgclf.stages."))
        assert not stages, f"bench/{script.name} imports {', '.join(stages)}"


# --- the params: what the code reads ---------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """params.py's sections, read from its classes."""

    sections: dict[str, str]  # Params attribute -> params.yaml name ("validation" -> "validate")
    classes: dict[str, str]  # section class -> params.yaml name ("Validate" -> "validate")
    keys: dict[str, frozenset[str]]  # params.yaml section -> its keys
    methods: dict[str, dict[str, frozenset[str] | None]]  # section -> method -> keys it reads (None: all)


def _fields(cls: ast.ClassDef) -> dict[str, ast.AnnAssign]:
    return {
        n.target.id: n
        for n in cls.body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id != "model_config"
    }


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.cache
def schema() -> Schema:
    classes = {n.name: n for n in tree("imgclf.params").body if isinstance(n, ast.ClassDef)}
    sections: dict[str, str] = {}
    by_class: dict[str, str] = {}
    for attr, field in _fields(classes["Params"]).items():
        cls = ast.unparse(field.annotation)
        if cls not in classes:
            continue  # root: not a section of params.yaml
        aliases = [
            alias
            for call in ast.walk(field)
            if isinstance(call, ast.Call)
            for k in call.keywords
            if k.arg == "alias" and (alias := _str(k.value)) is not None
        ]
        sections[attr] = by_class[cls] = aliases[0] if aliases else attr
    keys: dict[str, frozenset[str]] = {}
    methods: dict[str, dict[str, frozenset[str] | None]] = {}
    for cls, section in by_class.items():
        keys[section] = frozenset(_fields(classes[cls]))
        methods[section] = {}
        for method in classes[cls].body:
            if isinstance(method, ast.FunctionDef) and not method.name.startswith("_"):
                read = {
                    n.attr
                    for n in ast.walk(method)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
                }
                dynamic = (
                    any(  # getattr(self, key), self.model_dump(): any key
                        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr"
                        for n in ast.walk(method)
                    )
                    or "model_dump" in read
                )
                methods[section][method.name] = None if dynamic else frozenset(read & keys[section])
    return Schema(sections, by_class, keys, methods)


Read = tuple[str, str | None]  # (params.yaml section, key); None: the whole section


def _scopes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of one scope: not those of the functions and classes defined in it."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _scopes(child)


class Reads:
    """The params one module reads: read -> where (module.function)."""

    def __init__(self, module: str) -> None:
        self.module, self.schema, self.found = module, schema(), dict[Read, set[str]]()
        self.constants = {  # module-level NAME = {"a", "b"}: what model_dump(include=NAME) names
            t.id: n.value
            for n in tree(module).body
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        self._scope(tree(module), {"params": PARAMS}, module)

    def _kind(self, expr: ast.expr, env: dict[str, str]) -> str | None:
        """PARAMS, a section's params.yaml name, or None: what ``expr`` holds."""
        if isinstance(expr, ast.Name):
            return env.get(expr.id)
        if isinstance(expr, ast.Attribute):
            if expr.attr == "params":  # resolved.params: autoconf's Resolved
                return PARAMS
            if self._kind(expr.value, env) == PARAMS:
                return self.schema.sections.get(expr.attr)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "model_copy":
            return self._kind(expr.func.value, env)
        return None

    def _annotated(self, annotation: ast.expr | None) -> str | None:
        text = ast.unparse(annotation) if annotation is not None else ""
        if re.search(r"\bParams\b", text):
            return PARAMS
        return next((s for c, s in self.schema.classes.items() if re.search(rf"\b{c}\b", text)), None)

    def _scope(self, node: ast.AST, outer: dict[str, str], where: str) -> None:
        env = dict(outer)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                kind = self._annotated(arg.annotation)
                if kind is not None:
                    env[arg.arg] = kind
                elif arg.arg in env:  # shadowed: MLflow's `params: dict` in a pyfunc's predict
                    del env[arg.arg]
        nodes = list(_scopes(node))
        for _ in range(2):  # aliases of aliases: t = params.train; u = t.model_copy()
            for n in nodes:
                if isinstance(n, ast.Assign):
                    for target in n.targets:
                        pairs = (
                            zip(target.elts, n.value.elts, strict=False)
                            if isinstance(target, ast.Tuple) and isinstance(n.value, ast.Tuple)
                            else [(target, n.value)]
                        )
                        for name, value in pairs:
                            kind = self._kind(value, env)
                            if isinstance(name, ast.Name) and kind is not None:
                                env[name.id] = kind
                elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                    kind = self._annotated(n.annotation)
                    if kind is not None:
                        env[n.target.id] = kind
        for n in nodes:
            if isinstance(n, ast.Attribute):
                self._attribute(n, env, where)
            elif isinstance(n, ast.Call):
                self._call(n, env, nodes, where)
        for child in ast.iter_child_nodes(node):
            self._nested(child, env, where)

    def _nested(self, n: ast.AST, env: dict[str, str], where: str) -> None:
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            self._scope(n, env, f"{where}.{n.name}")
        elif isinstance(n, ast.ClassDef):
            for child in n.body:
                self._nested(child, env, f"{where}.{n.name}")
        elif not isinstance(n, ast.expr):
            for inner in ast.iter_child_nodes(n):  # functions under if/with/try
                self._nested(inner, env, where)

    def _add(self, read: Read, where: str) -> None:
        self.found.setdefault(read, set()).add(where)

    def _attribute(self, n: ast.Attribute, env: dict[str, str], where: str) -> None:
        section = self._kind(n.value, env)
        if section is None or section == PARAMS:
            return  # a bare section handed on is not a read: its reader is counted
        if n.attr in self.schema.keys[section]:
            self._add((section, n.attr), where)
        elif n.attr in self.schema.methods[section]:
            keys = self.schema.methods[section][n.attr]
            for key in sorted(keys) if keys is not None else [None]:
                self._add((section, key), where)

    def _call(self, n: ast.Call, env: dict[str, str], nodes: list[ast.AST], where: str) -> None:
        func = n.func
        if isinstance(func, ast.Name) and func.id == "getattr" and n.args:
            section = self._kind(n.args[0], env)
            if section not in (None, PARAMS):
                self._add((section, _str(n.args[1]) if len(n.args) > 1 else None), where)
        if not isinstance(func, ast.Attribute):
            return
        kind = self._kind(func.value, env)
        if kind == PARAMS and func.attr == "path" and n.args:
            for key in self._names(n.args[0], nodes):
                self._add(("paths", key), where)
        elif func.attr == "model_dump" and kind is not None and where.rpartition(".")[2] not in PROVENANCE:
            dumped = [kind] if kind != PARAMS else self._dumped(n)
            for section in dumped:
                self._add((section, None), where)

    def _names(self, arg: ast.expr, nodes: list[ast.AST]) -> list[str | None]:
        """params.path's key: a literal, or a loop over literal names; None when computed."""
        if _str(arg) is not None:
            return [_str(arg)]
        loops = [
            n.iter
            for n in nodes
            if isinstance(n, ast.For | ast.comprehension)
            and isinstance(n.target, ast.Name)
            and isinstance(arg, ast.Name)
            and n.target.id == arg.id
        ]
        literal = [_str(e) for loop in loops if isinstance(loop, ast.Tuple | ast.List) for e in loop.elts]
        return literal if literal and None not in literal else [None]

    def _dumped(self, call: ast.Call) -> list[str]:
        """The sections ``params.model_dump(include=..., exclude=...)`` dumps."""
        chosen = dict(self.schema.sections)
        for keyword in call.keywords:
            if keyword.arg not in ("include", "exclude"):
                continue
            value = self.constants.get(keyword.value.id) if isinstance(keyword.value, ast.Name) else keyword.value
            try:
                names = set(ast.literal_eval(value)) if value is not None else None
            except ValueError:
                names = None
            if names is None:
                continue  # computed: counted as everything
            if keyword.arg == "include":
                chosen = {a: s for a, s in chosen.items() if a in names}
            else:
                chosen = {a: s for a, s in chosen.items() if a not in names}
        return sorted(chosen.values())


@functools.cache
def module_reads(module: str) -> dict[Read, set[str]]:
    return Reads(module).found


def stage_reads(name: str) -> dict[Read, set[str]]:
    """What the modules ``imgclf <name>`` runs read of params.yaml; params.py's own reads aside."""
    found: dict[Read, set[str]] = {}
    for module in sorted(stage_modules(name) - {"imgclf.params"}):
        for read, where in module_reads(module).items():
            found.setdefault(read, set()).update(where)
    return found


def listed(read: Read, stage: dict[str, object]) -> bool:
    """Whether the stage's params list, or for paths its ${paths.*} deps and outputs, covers it."""
    section, key = read
    params = {p for p in stage.get("params") or [] if isinstance(p, str)}  # type: ignore[attr-defined]
    if section in params:
        return True
    files = entries(stage, "deps", "outs", "metrics", "plots")
    every = [key] if key is not None else sorted(schema().keys[section])
    return all(f"{section}.{k}" in params or (section == "paths" and "${paths." + k + "}" in files) for k in every)


@pytest.mark.parametrize("name", STAGES)
def test_stage_params_cover_what_it_reads(name: str) -> None:
    stage = dvc_stages()[name]
    if "params.yaml" in entries(stage, "deps"):
        return  # the whole file: check
    missing = {
        f"{s}.{k}" if k else f"{s} (all of it)": where
        for (s, k), where in stage_reads(name).items()
        if not listed((s, k), stage) and (s, k) not in SPEED_ONLY
    }
    assert not missing, f"dvc.yaml: stage {name} reads params its params list misses: " + "; ".join(
        f"{key} (in {', '.join(sorted(where))})" for key, where in sorted(missing.items())
    )


def test_training_code_digest_names_modules_train_runs() -> None:
    """checkpoints.TRAINING_CODE, the files whose digest says a backup still fits the code,
    is written by hand too: each entry must be a module the train stage runs, or the digest
    reads a file that is not there (as when the modules moved into subpackages)."""
    code = next(
        n.value
        for n in tree("imgclf.training.checkpoints").body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TRAINING_CODE" for t in n.targets)
    )
    runs = {relative(m).removeprefix("src/imgclf/") for m in stage_modules("train")}
    strays = sorted(set(ast.literal_eval(code)) - runs)
    assert not strays, f"checkpoints.TRAINING_CODE names files train does not run: {', '.join(strays)}"


def test_folder_deps_leave_bytecode_out() -> None:
    """Python writes __pycache__/*.pyc into the folders it imports from, anew when a
    source's mtime changes (a checkout) or another Python version runs: in a folder dep,
    DVC would see a change and rerun the stage (train: for minutes). .dvcignore keeps it out."""
    from dvc.ignore import DvcIgnorePatterns

    deps = {d.rstrip("/") for s in dvc_stages().values() for d in entries(s, "deps") if d.startswith("src/")}
    folders = {d for d in deps if (ROOT / d).is_dir()}
    lines = [line.strip() for line in (ROOT / ".dvcignore").read_text(encoding="utf-8").splitlines()]
    ignore = DvcIgnorePatterns([line for line in lines if line and not line.startswith("#")], str(ROOT), "/")
    unguarded = sorted(f for f in folders if not ignore.matches(str(ROOT / f), "__pycache__", is_dir=True))
    assert not unguarded, f".dvcignore: __pycache__ counts in the folder deps {', '.join(unguarded)}"
