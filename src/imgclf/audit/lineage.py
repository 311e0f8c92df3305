"""A registered version's lineage: the chain from the registry version back to its MLflow
run, its code (git commit, branch, a dirty tree's files and logged diff), its data version
(and whether DVC can still bring it back), its split, params and datasets.

Read from the store without MLflow for a local store (imgclf.audit.store), from git, and
from DVC's cache: no TensorFlow, and ``imgclf lineage`` answers in half a second on the demo. The training
run's tags are the code's and data's record (they were taken when it trained); the
version's own tags add what register decided (content hash, params digest, metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imgclf import provenance, tracking
from imgclf.audit import dataversion, store
from imgclf.errors import LineageError
from imgclf.params import Params
from imgclf.registry import listing, registry

# Tags `imgclf reproduce` sets on the version it checked.
REPRODUCED_AT, REPRODUCE_VERDICT, REPRODUCE_RUN = "reproduced_at", "reproduce_verdict", "reproduce_run_id"
PARAMS_FILE = "params.yaml"  # a dirty file of this name is a params change; any other, a code change


@dataclass(frozen=True)
class Code:
    commit: str  # "unknown" when git could not tell
    branch: str | None
    dirty: bool | None  # None: not recorded
    dirty_files: list[str]
    diff: str | None  # the run's artifact holding the dirty tree's diff
    in_repo: bool  # the commit is in this repository

    @property
    def dirty_params(self) -> list[str]:
        return [f for f in self.dirty_files if Path(f).name == PARAMS_FILE]

    @property
    def dirty_code(self) -> list[str]:
        return [f for f in self.dirty_files if Path(f).name != PARAMS_FILE]


@dataclass(frozen=True)
class Lineage:
    model: str
    version: listing.Version
    aliases: list[str]
    history: list[dict[str, str]]  # the champion_history entries naming this version
    champion: str | None  # the current champion's version
    run: store.Run | None  # None when the store no longer has it
    run_link: str | None
    code: Code
    data: dataversion.DataVersion
    split_md5: str
    params_differ: dict[str, dict[str, str | None]]  # key -> this version's and the champion's value

    @property
    def tags(self) -> dict[str, str]:
        return self.version.tags

    @property
    def metrics(self) -> dict[str, float]:
        found = {}
        for key, value in self.version.tags.items():
            if key.startswith("test_") and key != "test_images":
                try:
                    found[key.removeprefix("test_")] = float(value)
                except ValueError:
                    continue
        return found

    def as_json(self) -> dict[str, Any]:
        """What ``imgclf lineage --json`` prints."""
        run, data, code = self.run, self.data, self.code
        return {
            "model": self.model,
            "version": self.version.version,
            "registered": _iso(self.version.creation_timestamp),
            "aliases": self.aliases,
            "champion_history": self.history,
            "run": None
            if run is None
            else {
                "id": run.run_id,
                "experiment": run.experiment,
                "experiment_id": run.experiment_id,
                "status": run.status,
                "link": self.run_link,
            },
            "code": {
                "commit": code.commit,
                "branch": code.branch,
                "dirty": code.dirty,
                "dirty_code": code.dirty_code,
                "dirty_params": code.dirty_params,
                "diff_artifact": code.diff,
                "commit_in_repo": code.in_repo,
            },
            "data": {
                "raw_md5": data.md5,
                "files": data.files,
                "classes": data.classes,
                "available": data.where,
                "remote": data.remote,
            },
            "split_md5": self.split_md5,
            "params": {
                "digest": self.tags.get("params_digest"),
                "champion": self.champion,
                "differ_from_champion": self.params_differ,
            },
            "datasets": [
                {"context": d.context, "name": d.name, "digest": d.digest, "rows": d.rows, "source": d.source}
                for d in (run.datasets if run else [])
            ],
            "content_hash": self.tags.get("content_hash"),
            "test_metrics": self.metrics,
            "reproduced": None
            if REPRODUCED_AT not in self.tags
            else {
                "at": self.tags[REPRODUCED_AT],
                "verdict": self.tags.get(REPRODUCE_VERDICT),
                "run_id": self.tags.get(REPRODUCE_RUN),
            },
        }

    def lines(self) -> list[str]:
        """What ``imgclf lineage`` prints: one line per link of the chain."""
        v, run, code, data = self.version, self.run, self.code, self.data
        named = f" ({', '.join(self.aliases)})" if self.aliases else ""
        lines = [f"{self.model} version {v.version}{named}, registered {_iso(v.creation_timestamp)}"]
        for entry in self.history:
            lines.append(f"  champion:   since {entry.get('at', '?')} ({entry.get('reason', '')})")
        if run is None:
            lines.append(f"  run:        {v.run_id or 'none recorded'}: no longer in the store")
        else:
            lines.append(f"  run:        {run.run_id} in experiment {run.experiment} ({run.status}): {self.run_link}")
        lines.append(f"  code:       commit {code.commit[:12]} on {code.branch or '?'}, {_dirt(code)}")
        if not code.in_repo:
            lines.append("              (that commit is not in this repository)")
        lines.append(f"  data:       {data.md5}: {_data(data)}")
        lines.append(f"  split:      md5 {self.split_md5 or '?'}")
        lines.append(f"  params:     digest {self.tags.get('params_digest', '?')}; {self._params_line()}")
        for d in run.datasets if run else []:
            rows = f", {d.rows} rows" if d.rows is not None else ""
            lines.append(f"  dataset:    {d.context or d.name}: digest {d.digest} ({d.source}{rows})")
        scores = ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items() if k in ("f1", "accuracy"))
        lines.append(f"  model:      content hash {self.tags.get('content_hash', '?')[:16]}; test {scores or '?'}")
        verdict = self.tags.get(REPRODUCE_VERDICT)
        at = self.tags.get(REPRODUCED_AT, "")
        lines.append(f"  reproduced: {at}: {verdict}" if verdict else "  reproduced: never")
        return lines

    def _params_line(self) -> str:
        if self.champion is None:
            return "no champion to compare with"
        if self.champion == self.version.version:
            return "this is the champion"
        if not self.params_differ:
            return f"the same as the champion's (version {self.champion})"
        shown = [f"{k} {v['this']} (champion {v['champion']})" for k, v in list(self.params_differ.items())[:8]]
        more = f", and {len(self.params_differ) - 8} more" if len(self.params_differ) > 8 else ""
        return f"differ from the champion's (version {self.champion}): " + ", ".join(shown) + more


def trace(params: Params, ref: str) -> Lineage:
    """The lineage of the version ``ref`` (a number or an alias) of register.model_name.

    Raises:
        LineageError: no such registered model, version or alias.
    """
    uri, name = tracking.tracking_uri(params), params.registry.model_name
    model = store.registered_model(uri, name)
    version = find_version(model, name, ref)
    run = store.run(uri, version.run_id) if version.run_id else None
    champion = model.aliases.get(registry.CHAMPION)
    differ: dict[str, dict[str, str | None]] = {}
    if champion is not None and champion != version.version and run is not None:
        theirs = next((v for v in model.versions if v.version == champion), None)
        other = store.run(uri, theirs.run_id) if theirs and theirs.run_id else None
        if other is not None:
            differ = params_differ(run.params, other.params)

    def recorded(key: str) -> str:  # as the training run took it, else as register did
        return (run.tags.get(key) if run else None) or version.tags.get(key, "")

    commit, dirty, files = recorded("git_commit") or "unknown", recorded("git_dirty"), recorded("git_dirty_files")
    code = Code(
        commit=commit,
        branch=recorded("git_branch") or _branch_with(params.root, commit),
        dirty={"true": True, "false": False}.get(dirty),
        dirty_files=[f for f in files.split(",") if f],
        diff=recorded(provenance.DIFF_TAG) or None,
        in_repo=has_commit(params.root, commit),
    )
    return Lineage(
        model=name,
        version=version,
        aliases=sorted(a for a, v in model.aliases.items() if v == version.version),
        history=[e for e in registry.history_of(model.tags) if str(e.get("version")) == version.version],
        champion=champion,
        run=run,
        run_link=tracking.run_link(params, run.experiment_id, run.run_id) if run else None,
        code=code,
        data=dataversion.locate(params.root, recorded("data_raw_md5") or dataversion.UNTRACKED),
        split_md5=recorded("data_split_md5"),
        params_differ=differ,
    )


def find_version(model: listing.Snapshot, name: str, ref: str) -> listing.Version:
    """The version ``ref`` names: its number, or an alias (champion, challenger, ...)."""
    if not model.exists:
        raise LineageError(f"no registered model {name} in this store; run `make run` or `imgclf register`")
    number = model.aliases.get(ref, ref)
    found = next((v for v in model.versions if v.version == number), None)
    if found is None:
        known = ", ".join(v.version for v in reversed(model.versions)) or "none"
        aliases = ", ".join(sorted(model.aliases)) or "none"
        raise LineageError(f"{name} has no version or alias {ref!r} (versions: {known}; aliases: {aliases})")
    return found


def params_differ(this: dict[str, str], other: dict[str, str]) -> dict[str, dict[str, str | None]]:
    """The params (flattened keys) whose values differ between two runs; None where one lacks it."""
    return {
        key: {"this": this.get(key), "champion": other.get(key)}
        for key in sorted(set(this) | set(other))
        if this.get(key) != other.get(key)
    }


def has_commit(root: Path, commit: str) -> bool:
    """Whether the repository at ``root`` holds ``commit`` (a squash or force-push can drop it)."""
    if not commit or commit == "unknown":
        return False
    return provenance.git(root, "cat-file", "-e", f"{commit}^{{commit}}") is not None


def _branch_with(root: Path, commit: str) -> str | None:
    """A branch holding ``commit``: for versions trained before the branch was recorded."""
    if commit == "unknown":
        return None
    found = provenance.git(root, "branch", "--contains", commit, "--format=%(refname:short)")
    return next(iter((found or "").split()), None)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _dirt(code: Code) -> str:
    if code.dirty is None:
        return "dirty or clean: not recorded"
    if not code.dirty:
        return "clean (code and params as committed)"
    kinds = (("code", code.dirty_code), ("params", code.dirty_params))
    parts = "; ".join(f"{kind}: {', '.join(files)}" for kind, files in kinds if files)
    logged = f"diff logged as {code.diff}" if code.diff else "no diff logged"
    return f"dirty ({parts}); {logged}"


def _data(data: dataversion.DataVersion) -> str:
    counts = ""
    if data.files is not None:
        classes = data.classes or {}
        per_class = ", ".join(f"{label} {n}" for label, n in classes.items())
        counts = f"{data.files} files, {len(classes)} classes ({per_class}); "
    where = {
        dataversion.CACHE: "in DVC's cache",
        dataversion.REMOTE: f"not in DVC's cache, on the remote {data.remote}",
        dataversion.UNCHECKED: f"not in DVC's cache; the remote {data.remote} not asked (network)",
        dataversion.MISSING: "MISSING: in neither DVC's cache nor "
        + (f"the remote {data.remote}" if data.remote else "a remote (none is configured)"),
        dataversion.UNTRACKED: "no DVC data version recorded",
    }[data.where]
    return counts + where
