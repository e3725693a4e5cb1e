"""The delta-rs backend's commit: add the moved files, remove the replaced partitions' files.

``create_write_transaction`` validates nothing and computes the removals from the caller's
snapshot, so the snapshot is refreshed right before each attempt, a lost race is retried on a
fresh one, and the result is verified against the log afterwards.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from rfm_spark.errors import ConcurrentWriteError, TableError
from rfm_spark.io.commits import TXN_KEY, Txn, decode_metadata
from rfm_spark.io.deltars.schema import check_table, with_added_columns
from rfm_spark.io.deltars.staging import data_files, partition_text

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5


def _find(root: str, *, write_id: str | None = None, txn: Txn | None = None) -> int | None:
    """The version whose commit carries ``write_id`` (or the ``txn`` key); None if none."""
    if not DeltaTable.is_deltatable(root):
        return None
    for entry in DeltaTable(root).history():
        metadata, found_id = decode_metadata(entry.get("userMetadata"))
        if (write_id and found_id == write_id) or (txn and metadata.get(TXN_KEY) == txn.key):
            return int(entry["version"])
    return None


def is_committed(root: str, write_id: str) -> bool:
    try:
        return _find(root, write_id=write_id) is not None
    except (DeltaError, OSError):
        return False


def txn_done(table: DeltaTable, txn: Txn | None) -> bool:
    """The table already holds ``txn`` (Delta's per-application transaction version)."""
    if txn is None:
        return False
    done = table.transaction_version(txn.app_id)
    return done is not None and done >= txn.version


def commit_files(
    root: str,
    table: DeltaTable | None,
    schema: DeltaSchema,
    actions: list[AddAction],
    *,
    partition_column: str,
    values: list[str],
    user_metadata: str,
    table_properties: Mapping[str, str] | None,
    write_id: str,
    txn: Txn | None,
) -> tuple[int, bool]:
    """Commit ``actions`` replacing the ``values`` partitions.

    Returns:
        The version, and whether this write committed it. With ``txn``, a table that already
        holds it is left alone and the earlier commit's version returned with False (the
        caller then removes the moved files, as for any uncommitted write).
    """
    # No silent rebase by deltalake (max_commit_retries=0): its conflict check does not see
    # another writer's files added to a partition this snapshot held none of (two first
    # writes of one date), so a rebased stale commit would keep both. Every lost race comes
    # back to the loop below and is retried on a fresh snapshot instead.
    props = CommitProperties(
        custom_metadata={"userMetadata": user_metadata},
        max_commit_retries=0,
        app_transactions=[Transaction(txn.app_id, txn.version)] if txn else None,
    )
    if table is None:
        try:
            create_table_with_add_actions(
                root,
                schema,
                actions,
                mode="error",
                partition_by=[partition_column],
                configuration=dict(table_properties) if table_properties else None,
                commit_properties=props,
            )
            return find_version(root, write_id), True
        except DeltaError as exc:
            if not DeltaTable.is_deltatable(root):
                raise TableError(f"Creating the Delta table at {root} failed: {exc}") from exc
            table = DeltaTable(root)  # another writer created it meanwhile: overwrite below
    # The overwrite removes what *this snapshot* holds in the partitions: refresh it now, so
    # files another writer added meanwhile are removed too (verified after the commit).
    # A commit that loses a race is retried on a fresh snapshot: for other partitions it
    # then simply lands; for the same partition the later write replaces it as a whole.
    filters = (
        [(partition_column, "=", values[0])]
        if len(values) == 1
        else [(partition_column, "in", values)]
    )
    tx_actions: list[AddAction | RemoveAction] = list(actions)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table.update_incremental()
        if txn_done(table, txn):
            return find_version(root, write_id, txn), False
        added = check_table(table, schema, partition_column, root)
        try:
            table.create_write_transaction(
                tx_actions,
                mode="overwrite",
                schema=with_added_columns(table, schema, added),
                partition_by=[partition_column],
                partition_filters=filters,
                commit_properties=props,
            )
            break
        except CommitFailedError as exc:
            if is_committed(root, write_id):
                break
            if attempt == COMMIT_ATTEMPTS:
                raise ConcurrentWriteError(
                    f"A concurrent writer changed {root} while this write was committing "
                    f"({attempt} attempts; last: {exc}). Nothing was committed. "
                    "Fix: rerun the write."
                ) from exc
            log.info("commit to %s lost a race (attempt %d): %s; retrying", root, attempt, exc)
            time.sleep(0.2 * attempt)
            table = DeltaTable(root)
        except DeltaError as exc:
            raise TableError(f"Committing to the Delta table at {root} failed: {exc}") from exc
    return find_version(root, write_id), True


def find_version(root: str, write_id: str, txn: Txn | None = None) -> int:
    """The version of this write's commit, else of the ``txn``'s earlier one (deltalake does
    not return it)."""
    found = _find(root, write_id=write_id)
    if found is None and txn is not None:
        found = _find(root, txn=txn)
    if found is None:
        raise TableError(f"The commit of write {write_id} was not found in the history of {root}.")
    return found


def verify_partitions(
    root: str, version: int, partition_column: str, values: list[str], moved: list[str]
) -> None:
    """After the commit, the partitions must hold exactly the files of this write."""
    snapshot = DeltaTable(root, version=version)
    wanted = set(values)
    actual = {
        local
        for local, part in data_files(snapshot, root)
        if partition_text(part.get(partition_column)) in wanted
    }
    expected = {os.path.normpath(p) for p in moved}
    if actual != expected:
        extra = sorted(actual - expected)
        lost = sorted(expected - actual)
        raise ConcurrentWriteError(
            f"Version {version} of {root} was committed, but partition(s) {partition_column} "
            f"= {', '.join(values)} do not hold exactly this write's files: {len(extra)} "
            f"other file(s) kept (e.g. {extra[:3]}), {len(lost)} of this write's missing "
            f"(e.g. {lost[:3]}). Another writer changed the same partition at the same "
            "time (concurrent writes). Fix: let one job write a partition at a time and "
            "rerun this write."
        )
