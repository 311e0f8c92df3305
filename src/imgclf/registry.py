"""The MLflow Model Registry as imgclf governs it: versions, the gate, champion and challenger.

- Every new version gets the alias ``challenger``; the gate (``decide``) says whether it
  becomes ``champion`` (it then loses ``challenger``). Aliases, not the deprecated stages.
- A version's ``content_hash`` tag (of the Keras file's config and weights, not of its
  save date) makes registration idempotent: the same model is never a second version.
- The champions' history is a tag on the registered model (``champion_history``, a JSON
  stack), so ``rollback`` works from any process, on any machine that sees the store.
- Decisions are serialised by ``decision_lock``: a file lock beside a local sqlite store,
  and for a tracking server a per-machine lock plus read-back verification of the alias.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.atomic import file_lock
from imgclf.errors import ImgclfError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
HISTORY_KEEP = 50  # champions remembered for rollback; the tag stays a few kB


class RegistryError(ImgclfError):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class Gate:
    """Whether a candidate becomes champion, and why (one sentence per check)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)


def decide(
    candidate: Mapping[str, float | None],
    floors: Mapping[str, float],
    champion_f1: float | None,
    min_delta: float,
    champion_problem: str | None = None,
) -> Gate:
    """The gate: every floor met, and (when a champion was scored) F1 beats it by min_delta.

    Args:
        candidate: the candidate's metrics on the current test split.
        floors: minimum value per metric name (register.min_metrics).
        champion_f1: the champion's F1 on the same images, or None when there is none.
        min_delta: how much higher the candidate's F1 must be than the champion's, and
            strictly higher even when it is 0.
        champion_problem: why a champion exists but could not be scored; it blocks
            promotion, since nothing says the candidate is better.
    """
    reasons, passed = [], True
    for name, floor in sorted(floors.items()):
        value = candidate.get(name)
        if value is None:
            reasons.append(f"{name} is undefined on this test split (floor {floor:g})")
            passed = False
        elif value < floor:
            reasons.append(f"{name} {value:.4f} is below the floor {floor:g}")
            passed = False
        else:
            reasons.append(f"{name} {value:.4f} meets the floor {floor:g}")
    f1 = candidate.get("f1")
    if champion_problem is not None:
        reasons.append(champion_problem)
        passed = False
    elif champion_f1 is None:
        reasons.append("no champion to beat")
    # Rounded: 0.94 - 0.935 is 0.00499999... in floating point, and that is a gain of 0.005.
    elif f1 is None or round(f1 - champion_f1, 9) < min_delta or f1 <= champion_f1:
        reasons.append(f"f1 {f1 or 0:.4f} does not beat the champion's {champion_f1:.4f} by {min_delta:g}")
        passed = False
    else:
        reasons.append(f"f1 {f1:.4f} beats the champion's {champion_f1:.4f} by {f1 - champion_f1:.4f}")
    return Gate(promote=passed, reasons=reasons)


def content_hash(model_file: Path) -> str:
    """sha256 of a .keras file's config and weights: equal for the same model saved twice,
    in any process.

    The archive's metadata.json holds the save date, and its config numbers shared
    objects by their Python id() (a memory address): both would make every save of an
    unchanged model a new version. The date is left out, the ids renumbered in order.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(model_file) as archive:
        for name in sorted(n for n in archive.namelist() if n != "metadata.json"):
            data = archive.read(name)
            if name == "config.json":
                data = json.dumps(_renumber(json.loads(data), {}), sort_keys=True).encode()
            digest.update(name.encode() + b"\0")
            digest.update(data)
    return digest.hexdigest()


def _renumber(node: Any, seen: dict[Any, int]) -> Any:
    """The config with each shared_object_id replaced by its order of first appearance."""
    if isinstance(node, dict):
        return {
            key: seen.setdefault(value, len(seen)) if key == "shared_object_id" else _renumber(value, seen)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renumber(item, seen) for item in node]
    return node


@contextmanager
def decision_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise registrations and promotions that share a store.

    sqlite: a lock file beside the database, so every process using that database waits.
    A server: a per-machine lock keyed by its URI; processes on other machines are caught
    by the read-back in ``Registry.set_champion``.
    """
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///") + ".registry.lock")
    else:
        key = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"imgclf-registry-{key}.lock"
    with file_lock(path):
        yield


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """One registered model in one store."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client, self.name = client, name

    def exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def ensure(self, description: str) -> None:
        from mlflow.exceptions import MlflowException

        if self.exists():
            return
        try:
            self.client.create_registered_model(self.name, description=description)
        except MlflowException as exc:  # created meanwhile by a process on another machine
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        if not self.exists():
            return []
        found = self.client.search_model_versions(f"name='{self.name}'", max_results=10_000)
        return sorted(found, key=lambda v: int(v.version), reverse=True)  # int from some stores, str from others

    def version(self, version: str) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise RegistryError(f"{self.name} has no version {version!r}") from None

    def aliases(self) -> dict[str, str]:
        """alias -> version."""
        if not self.exists():
            return {}
        return {a: str(v) for a, v in self.client.get_registered_model(self.name).aliases.items()}

    def champion(self) -> str | None:
        return self.aliases().get(CHAMPION)

    def find(self, model_hash: str) -> ModelVersion | None:
        """The oldest version holding this exact model, if any."""
        same = [v for v in self.versions() if v.tags.get("content_hash") == model_hash]
        return same[-1] if same else None

    def create(self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str) -> ModelVersion | None:
        """A new version, aliased challenger; None when a process the lock does not reach
        (another machine) registered the same model meanwhile: the older version stays."""
        # A logged model's URI is models:/<model id>; a tracking server wants that id too.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = self.client.create_model_version(
            self.name, source=model_uri, run_id=run_id, tags=dict(tags), description=description, model_id=model_id
        )
        oldest = self.find(tags["content_hash"])
        if oldest is not None and str(oldest.version) != str(version.version):
            self.client.delete_model_version(self.name, version.version)
            return None
        self.client.set_registered_model_alias(self.name, CHALLENGER, version.version)
        return version

    def history(self) -> list[dict[str, str]]:
        """Champions, oldest first: {"version", "at", "reason"} each; the last is the current one."""
        if not self.exists():
            return []
        raw = self.client.get_registered_model(self.name).tags.get(HISTORY_TAG, "[]")
        try:
            entries = json.loads(raw)
        except ValueError:
            return []
        return [e for e in entries if isinstance(e, dict) and "version" in e]

    def set_champion(self, version: str, reason: str, history: list[dict[str, str]] | None = None) -> None:
        """Point ``champion`` at ``version``, record why, and check the alias reads back.

        ``history`` replaces the stored stack (rollback pops it); by default the new
        champion is pushed onto it.
        """
        stack = self.history() if history is None else history
        if history is None:
            stack = [*stack, {"version": str(version), "at": now(), "reason": reason}]
        self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        self.client.set_registered_model_tag(self.name, HISTORY_TAG, json.dumps(stack[-HISTORY_KEEP:]))
        self.client.set_model_version_tag(self.name, str(version), "champion_since", now())
        self.client.set_model_version_tag(self.name, str(version), "champion_reason", reason)
        if self.aliases().get(CHALLENGER) == str(version):
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        # A tracking server has no lock shared between machines: check the alias stuck.
        for _ in range(3):
            if self.champion() == str(version):
                return
            time.sleep(0.5)
        raise RegistryError(
            f"{self.name}: champion moved to version {self.champion()} while setting it to {version}; "
            "another process promoted at the same time: check `imgclf models` and promote again"
        )

    def promote(self, version: str, reason: str) -> str | None:
        """Make ``version`` champion by hand; returns the previous champion."""
        self.version(version)  # fails clearly for an unknown version
        previous = self.champion()
        if previous == str(version):
            raise RegistryError(f"{self.name} version {version} is already the champion")
        self.set_champion(str(version), reason)
        return previous

    def rollback(self, reason: str) -> tuple[str, str]:
        """Give ``champion`` back to the champion before the current one; (from, to)."""
        current = self.champion()
        if current is None:
            raise RegistryError(f"{self.name} has no champion to roll back from")
        stack = self.history()
        while stack and stack[-1]["version"] == current:
            stack.pop()
        existing = {str(v.version) for v in self.versions()}
        while stack and stack[-1]["version"] not in existing:  # deleted since
            stack.pop()
        if not stack:
            raise RegistryError(f"{self.name}: no earlier champion to roll back to from version {current}")
        target = stack[-1]["version"]
        self.set_champion(target, reason, history=stack)
        self.client.set_model_version_tag(self.name, current, "rolled_back_at", now())
        return current, target


def describe_version(v: ModelVersion, aliases: Mapping[str, str]) -> dict[str, Any]:
    """One row of ``imgclf models``."""
    names = sorted(a for a, version in aliases.items() if version == str(v.version))
    created = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    return {
        "version": str(v.version),
        "aliases": ",".join(names),
        "created": created,
        "f1": v.tags.get("test_f1", ""),
        "accuracy": v.tags.get("test_accuracy", ""),
        "gate": v.tags.get("gate_decision", ""),
        "commit": v.tags.get("git_commit", "")[:8],
        "data_md5": v.tags.get("data_raw_md5", "")[:8],
        "run": (v.run_id or "")[:12],
    }
