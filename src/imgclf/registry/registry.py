"""The MLflow Model Registry as imgclf governs it: versions, the gate, champion and challenger.

- Every new version gets the alias ``challenger``; the gate (``decide``) says whether it
  becomes ``champion`` (it then loses ``challenger``). Aliases, not the deprecated stages.
- A version's ``content_hash`` tag (of the Keras file's config and weights, not of its
  save date) makes registration idempotent: the same model is never a second version.
- The champions' history is a tag on the registered model (``champion_history``, a JSON
  stack), so ``rollback`` works from any process, on any machine that sees the store.
- Decisions are serialised by ``decision_lock``: a file lock beside a local sqlite store,
  and for a tracking server a per-machine lock plus read-back verification of the alias.
- Every decision (a gate, a promote, a rollback) is one ``Change``, recorded whole in the
  registered model's ``pending_change`` tag before any alias or tag moves, and struck out
  once all of it is applied. A process killed half-way leaves that record, and the next
  register, promote or rollback finishes it first (``reconcile``): whatever the moment of
  the kill, the store ends as if the step had run uninterrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from imgclf.errors import ImgclfError
from imgclf.provenance import content_hash as content_hash  # a version's identity: its content_hash tag

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from imgclf.registry.listing import Version

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
HISTORY_KEEP = 50  # champions remembered for rollback; the tag stays a few kB
# A registered model's tag is a VARCHAR(5000) in a SQL store other than sqlite.
TAG_MAX = 5000
PENDING_TAG = "pending_change"


class RegistryError(ImgclfError):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class Gate:
    """Whether a candidate becomes champion, and why (one sentence per check)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """One registry decision, as the pending_change tag records it before it is applied.

    Applying it twice is applying it once: aliases and tags are set to values, the history
    entry is pushed only if it is not already on top, and ``keep`` truncates to a length.
    """

    op: str  # gate | promote | rollback
    version: str  # the version decided on (for a rollback, the one that gets champion back)
    was: str | None  # the champion before the step: what promote and rollback report
    version_tags: dict[str, dict[str, str]]  # version -> tags to set on it
    set_aliases: dict[str, str]  # alias -> version
    unset_aliases: dict[str, str] = field(default_factory=dict)  # alias -> removed if on this version
    push: dict[str, str] | None = None  # a champion_history entry to push
    keep: int | None = None  # rollback: the history keeps its first `keep` entries

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> Change:
        return cls(**json.loads(raw))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):  # fcntl.flock on Linux: released by the OS when a holder dies
        yield


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """One registered model in one store."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client, self.name = client, name

    def _model(self) -> RegisteredModel | None:
        """The registered model (its aliases and tags) in one request; None if there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def exists(self) -> bool:
        return self._model() is not None

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
        model = self._model()
        return {} if model is None else {a: str(v) for a, v in model.aliases.items()}

    def champion(self) -> str | None:
        return self.aliases().get(CHAMPION)

    def find(self, model_hash: str) -> ModelVersion | None:
        """The oldest version holding this exact model, if any."""
        same = [v for v in self.versions() if v.tags.get("content_hash") == model_hash]
        return same[-1] if same else None

    def create(self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str) -> ModelVersion | None:
        """A new version (its gate gives it an alias); None when a process the lock does not
        reach (another machine) registered the same model meanwhile: the older version stays."""
        # A logged model's URI is models:/<model id>; a tracking server wants that id too.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = self.client.create_model_version(
            self.name, source=model_uri, run_id=run_id, tags=dict(tags), description=description, model_id=model_id
        )
        oldest = self.find(tags["content_hash"])
        if oldest is not None and str(oldest.version) != str(version.version):
            self.client.delete_model_version(self.name, version.version)
            return None
        return version

    def drop_duplicates(self, model_hash: str) -> None:
        """Delete the ungated newer copies of the oldest version holding this model: left by a
        process killed between creating a duplicate (another machine's race) and deleting it."""
        from mlflow.exceptions import MlflowException

        same = [v for v in self.versions() if v.tags.get("content_hash") == model_hash]
        aliased = set(self.aliases().values())
        for copy in same[:-1]:
            if "gate_decision" not in copy.tags and str(copy.version) not in aliased:
                try:
                    self.client.delete_model_version(self.name, copy.version)
                except MlflowException as exc:  # deleted meanwhile by the process that made it
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise

    def history(self) -> list[dict[str, str]]:
        """Champions, oldest first: {"version", "at", "reason"} each; the last is the current one."""
        model = self._model()
        return [] if model is None else _history(model)

    def pending(self) -> Change | None:
        """The decision a killed process recorded and did not finish, if any."""
        model = self._model()
        return None if model is None else pending_change(self.name, model.tags)

    def reconcile(self) -> Change | None:
        """Finish the decision a killed process left half-applied; returns it, or None.

        Run it under ``decision_lock`` before any new decision: the lock guarantees the
        pending change is the last decision taken, so applying it is always right.
        """
        from mlflow.exceptions import MlflowException

        change = self.pending()
        if change is None:
            return None
        logger.warning("%s: finishing the interrupted %s of version %s", self.name, change.op, change.version)
        try:
            self._apply(change)
        except MlflowException as exc:  # a version it names was deleted since: it cannot be finished
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            logger.warning("%s: dropped the interrupted %s (%s)", self.name, change.op, exc.message)
            self.client.delete_registered_model_tag(self.name, PENDING_TAG)
            return None
        return change

    def commit(self, change: Change) -> None:
        """Record ``change`` whole, apply it, strike it out; then check the champion reads back."""
        self.client.set_registered_model_tag(self.name, PENDING_TAG, change.dumps())
        self._apply(change)

    def _apply(self, change: Change) -> None:
        model = self.client.get_registered_model(self.name)
        for version, tags in change.version_tags.items():
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, version, key, value)
        if CHAMPION in change.set_aliases:
            # The UI's models list shows only the newest version's alias (a challenger, often)
            # and hides the champion behind "+1"; its Tags column shows the first tag, in the
            # order they were first set: this one, set before champion_history ever is.
            self.client.set_registered_model_tag(self.name, CHAMPION, f"version {change.set_aliases[CHAMPION]}")
        if change.push is not None or change.keep is not None:
            stack = _history(model)
            if change.keep is not None:
                stack = stack[: change.keep]
            if change.push is not None and (not stack or stack[-1] != change.push):
                stack.append(change.push)
            self.client.set_registered_model_tag(self.name, HISTORY_TAG, history_json(stack))
        aliases = {a: str(v) for a, v in model.aliases.items()}
        for alias, version in change.set_aliases.items():
            if aliases.get(alias) != version:
                self.client.set_registered_model_alias(self.name, alias, version)
        for alias, version in change.unset_aliases.items():
            if aliases.get(alias) == version:
                self.client.delete_registered_model_alias(self.name, alias)
        self.client.delete_registered_model_tag(self.name, PENDING_TAG)
        if CHAMPION in change.set_aliases:
            self._check_champion(change.set_aliases[CHAMPION])

    def _check_champion(self, version: str) -> None:
        # A tracking server has no lock shared between machines: check the alias stuck.
        for _ in range(3):
            if self.champion() == version:
                return
            time.sleep(0.5)
        raise RegistryError(
            f"{self.name}: champion moved to version {self.champion()} while setting it to {version}; "
            "another process promoted at the same time: check `imgclf models` and promote again"
        )

    def record_gate(self, version: str, tags: Mapping[str, str], promote: bool, reason: str) -> None:
        """The gate's decision on a new version: its gate tags, and champion (pushed onto the
        history) or challenger, in one change."""
        if not promote:
            self.commit(Change("gate", version, self.champion(), {version: dict(tags)}, {CHALLENGER: version}))
            return
        self.commit(_crowning("gate", version, self.champion(), reason, tags))

    def promote(self, version: str, reason: str) -> str | None:
        """Make ``version`` champion by hand; returns the previous champion.

        Rerun after a kill, it finishes the interrupted promotion and reports it as done.
        """
        finished = self.reconcile()
        self.version(version)  # fails clearly for an unknown version
        previous = self.champion()
        if previous == str(version):
            if finished is not None and finished.op == "promote" and finished.version == str(version):
                return finished.was
            raise RegistryError(f"{self.name} version {version} is already the champion")
        self.commit(_crowning("promote", str(version), previous, reason))
        return previous

    def rollback(self, reason: str) -> tuple[str, str]:
        """Give ``champion`` back to the champion before the current one; (from, to).

        Rerun after a kill, it finishes the interrupted rollback instead of rolling back twice.
        """
        finished = self.reconcile()
        if finished is not None and finished.op == "rollback" and finished.was is not None:
            return finished.was, finished.version
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
        target, at = stack[-1]["version"], now()
        change = Change(
            "rollback",
            target,
            current,
            {target: {"champion_since": at, "champion_reason": reason}, current: {"rolled_back_at": at}},
            {CHAMPION: target},
            {CHALLENGER: target},
            keep=len(stack),
        )
        self.commit(change)
        return current, target


def pending_change(name: str, tags: Mapping[str, str]) -> Change | None:
    """The decision recorded in a registered model's tags and not finished, if any."""
    raw = tags.get(PENDING_TAG)
    if raw is None:
        return None
    try:
        return Change.loads(raw)  # a tag is written whole or not at all
    except (ValueError, TypeError):  # edited by hand
        raise RegistryError(
            f"{name}: its {PENDING_TAG} tag is not a change imgclf recorded; delete the tag and retry"
        ) from None


def _crowning(op: str, version: str, was: str | None, reason: str, tags: Mapping[str, str] | None = None) -> Change:
    """``version`` becomes champion, pushed onto the history; it is no longer the challenger.
    ``tags`` (the gate's) are set on it in the same change."""
    at = now()
    return Change(
        op,
        version,
        was,
        {version: {**(tags or {}), "champion_since": at, "champion_reason": reason}},
        {CHAMPION: version},
        {CHALLENGER: version},
        push={"version": version, "at": at, "reason": reason},
    )


def _history(model: RegisteredModel) -> list[dict[str, str]]:
    return history_of(model.tags)


def history_of(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """The champions' history held in a registered model's tags, oldest first."""
    try:
        entries = json.loads(tags.get(HISTORY_TAG, "[]"))
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict) and "version" in e]


def history_json(stack: list[dict[str, str]]) -> str:
    """The history as JSON: the newest HISTORY_KEEP entries, fewer if they exceed TAG_MAX."""
    stack = stack[-HISTORY_KEEP:]
    while len(stack) > 1 and len(json.dumps(stack)) > TAG_MAX:
        stack = stack[1:]
    return json.dumps(stack)


def describe_version(v: ModelVersion | Version, aliases: Mapping[str, str]) -> dict[str, Any]:
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
