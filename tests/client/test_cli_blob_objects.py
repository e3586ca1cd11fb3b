"""Store lifetimes, dry runs, `delete --file`, `burn-blobs` and `health`, through click.

On the in-process nodes and fake chain of `test_cli_client.py`. A store's lifetime is given as
epochs, an end epoch or an earliest expiry time, exactly one, each checked against the system's
bounds; a dry run prices and names the blob without a transaction; `delete --file` finds the
blob by the file's content; `burn-blobs` drops owned objects (and only owned ones, all or none);
`health` asks every selected node over HTTP and reports each one, answering or not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.client import test_cli_client as cli_base
from tests.client.network import ThreadedNetwork
from tests.client.test_cli_client import ok, run, settle
from tests.node.cluster import blob_data
from walruspy.chain.api import SystemInfo
from walruspy.cli.main import cli
from walruspy.cli.output import quiet_library_logs
from walruspy.client.lifetime import StoreLifetime, parse_expiry_time
from walruspy.core.errors import InvalidInputError

pytestmark = pytest.mark.timeout(120)

network = cli_base.network
config = cli_base.config


def _info(network: ThreadedNetwork, config: Path) -> dict[str, Any]:
    return dict(json.loads(ok(network, config, "info", "--json").stdout)["epochInfo"])


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _store(network: ThreadedNetwork, config: Path, path: Path, *flags: str) -> dict[str, Any]:
    result = ok(network, config, "store", str(path), "--json", *flags)
    return dict(json.loads(result.stdout)["results"][0]["blobStoreResult"])


def _owned_ids(network: ThreadedNetwork, config: Path) -> set[str]:
    listed = json.loads(ok(network, config, "list-blobs", "--include-expired", "--json").stdout)
    return {blob["id"] for blob in listed["blobs"]}


# --- lifetimes ----------------------------------------------------------------------------------


def _system(epoch: int = 5, started: int = 1_000_000, duration: int = 3600) -> SystemInfo:
    return SystemInfo(
        chain_id=1, system_address="", wal_address="", epoch=epoch, n_shards=10,
        epoch_duration_s=duration, epoch_started_at=started, max_epochs_ahead=53,
        storage_price_per_unit_size=1, write_price_per_unit_size=1, total_capacity_size=1,
        used_capacity_size=0,
    )  # fmt: skip


def test_each_lifetime_form_buys_the_epochs_walrus_computes() -> None:
    info, now = _system(), 1_000_100.0
    assert StoreLifetime(epochs=3).epochs_ahead(info, now) == 3
    assert StoreLifetime(epochs="max").epochs_ahead(info, now) == 53
    assert StoreLifetime(end_epoch=9).epochs_ahead(info, now) == 4
    # An expiry inside the current epoch needs 1 epoch; exactly at a boundary, one more.
    assert StoreLifetime(earliest_expiry=1_000_200).epochs_ahead(info, now) == 1
    assert StoreLifetime(earliest_expiry=1_000_000 + 3600).epochs_ahead(info, now) == 2
    assert StoreLifetime(earliest_expiry=1_000_000 + 2.5 * 3600).epochs_ahead(info, now) == 3


@pytest.mark.parametrize(
    ("lifetime", "message"),
    [
        (StoreLifetime(end_epoch=5), "end epoch 5 must be later than the current epoch 5"),
        (StoreLifetime(epochs=54), "up to 53 epochs ahead; 54 epochs were requested"),
        (StoreLifetime(end_epoch=60), "up to 53 epochs ahead; 55"),
        (StoreLifetime(earliest_expiry=1_000_050), "must be later than the current epoch's start"),
        (StoreLifetime(earliest_expiry=1_000_000 + 54 * 3600), "up to 53 epochs ahead; 55"),
    ],
)
def test_lifetimes_out_of_bounds_are_refused_by_name(lifetime: StoreLifetime, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        lifetime.epochs_ahead(_system(), 1_000_100.0)


def test_exactly_one_lifetime_form_and_times_as_walrus_reads_them() -> None:
    with pytest.raises(InvalidInputError, match="exactly one"):
        StoreLifetime()
    with pytest.raises(InvalidInputError, match="exactly one"):
        StoreLifetime(epochs=1, end_epoch=3)
    assert parse_expiry_time("2030-03-20T15:00:00Z") == parse_expiry_time("2030-03-20 15:00:00")
    assert parse_expiry_time("2030-03-20T16:00:00+01:00") == parse_expiry_time("2030-03-20T15:00")
    with pytest.raises(InvalidInputError, match="'next tuesday' is not a time"):
        parse_expiry_time("next tuesday")


def test_store_with_an_end_epoch_or_an_earliest_expiry_time(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    epoch = _info(network, config)
    current, start, duration = (
        epoch["currentEpoch"],
        epoch["startOfCurrentEpoch"],
        epoch["epochDurationS"],
    )
    by_end = _store(
        network, config, _file(tmp_path, "a", b"end epoch"), "--end-epoch", str(current + 4)
    )
    assert by_end["newlyCreated"]["blobObject"]["storage"]["endEpoch"] == current + 4
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + duration * 2 + 10))
    by_time = _store(
        network, config, _file(tmp_path, "b", b"expiry time"), "--earliest-expiry-time", expiry
    )
    assert by_time["newlyCreated"]["blobObject"]["storage"]["endEpoch"] == current + 3

    two = run(network, config, "store", str(tmp_path / "a"), "--epochs", "2", "--end-epoch", "9")
    assert two.exit_code == 2 and "exactly one of --epochs, --end-epoch" in two.output
    none = run(network, config, "store", str(tmp_path / "a"))
    assert none.exit_code == 2 and "exactly one of --epochs" in none.output
    past = run(network, config, "store", str(tmp_path / "a"), "--end-epoch", str(current))
    assert past.exit_code == 1 and f"must be later than the current epoch {current}" in past.output
    bad = run(network, config, "store", str(tmp_path / "a"), "--earliest-expiry-time", "soon")
    assert bad.exit_code == 2 and "'soon' is not a time" in bad.output


# --- dry runs -----------------------------------------------------------------------------------


def test_a_dry_run_prices_and_names_the_blob_without_a_transaction(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    data = blob_data(61, 30_000)
    path = _file(tmp_path, "dry.bin", data)
    owned = _owned_ids(network, config)
    result = json.loads(
        ok(network, config, "store", str(path), "--epochs", "4", "--dry-run", "--json").stdout
    )
    [entry] = result["results"]
    local = json.loads(ok(network, config, "blob-id", str(path), "--json").stdout)
    assert entry["blobId"] == local["blobId"]
    assert entry["unencodedSize"] == len(data) and entry["encodedSize"] == local["encodedLength"]
    assert entry["encodingType"] == "RS2" and entry["path"] == str(path)
    assert _owned_ids(network, config) == owned  # nothing was registered
    prices = json.loads(ok(network, config, "info", "--json").stdout)["priceInfo"]
    units = -(-entry["encodedSize"] // (1 << 20))
    storage, write = prices["storagePricePerUnitSize"], prices["writePricePerUnitSize"]
    assert entry["storageCost"] == units * (storage * 4 + write)
    stored = _store(network, config, path, "--epochs", "4")
    assert stored["newlyCreated"]["blobObject"]["blobId"] == entry["blobId"]
    text = ok(network, config, "store", str(path), "--epochs", "4", "--dry-run").stdout
    assert "Store dry-run succeeded" in text and entry["blobId"] in text

    site = tmp_path / "site"
    site.mkdir()
    (site / "x.txt").write_bytes(b"x")
    (site / "y.txt").write_bytes(b"yy")
    quilt = json.loads(ok(network, config, "store-quilt", "--paths", str(site), "--epochs", "2",
                          "--dry-run", "--json").stdout)  # fmt: skip
    assert network.network is not None
    n_shards = str(network.network.chain.n_shards)
    quiet_library_logs()  # the nodes' logs stay out of the command's stdout (see `run`)
    local_quilt = json.loads(
        CliRunner()
        .invoke(cli, ["quilt-id", "--n-shards", n_shards, "--paths", str(site), "--json"])
        .stdout
    )
    assert quilt["quiltBlobOutput"]["blobId"] == local_quilt["blobId"]
    assert quilt["patches"] == local_quilt["patches"]
    assert _owned_ids(network, config) == owned | {stored["newlyCreated"]["blobObject"]["id"]}


# --- delete --file and burn-blobs ---------------------------------------------------------------


def test_delete_by_file(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    path = _file(tmp_path, "gone.txt", b"delete me by my content")
    created = _store(network, config, path, "--epochs", "2")["newlyCreated"]["blobObject"]
    settle(network)
    deleted = json.loads(ok(network, config, "delete", "--file", str(path), "--json").stdout)
    assert deleted["blobIdentity"] == {"blobId": created["blobId"], "file": str(path)}
    assert [blob["id"] for blob in deleted["deletedBlobs"]] == [created["id"]]
    both = run(network, config, "delete", "--file", str(path), "--blob-id", created["blobId"])
    assert both.exit_code == 2 and "exactly one of --blob-id, --file and --object-id" in both.output


def test_burn_blobs_drops_owned_objects_and_only_those(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    first = _store(network, config, _file(tmp_path, "1", b"burn one"), "--epochs", "2")
    second = _store(network, config, _file(tmp_path, "2", b"burn two"), "--epochs", "2")
    ids = [r["newlyCreated"]["blobObject"]["id"] for r in (first, second)]
    foreign = "0x" + "ab" * 32
    refused = run(network, config, "burn-blobs", "--object-ids", ids[0], foreign, "--json")
    assert refused.exit_code == 1 and f"no blob object {foreign}" in refused.output
    assert set(ids) <= _owned_ids(network, config)  # all or none: nothing was burnt

    burned = json.loads(ok(network, config, "burn-blobs", "--object-ids", *ids, "--json").stdout)
    assert burned == {"burnedBlobs": ids, "aborted": False}
    assert not set(ids) & _owned_ids(network, config)
    text = ok(network, config, "burn-blobs", "--all-expired").stdout
    assert "This account owns no expired blob object." in text
    usage = run(network, config, "burn-blobs", "--all", "--all-expired")
    assert usage.exit_code == 2 and "exactly one of --object-ids, --all and --all-expired" in (
        usage.output
    )


# --- health ------------------------------------------------------------------------------------


def test_health_of_the_committee_and_of_chosen_nodes(
    network: ThreadedNetwork, config: Path
) -> None:
    report = json.loads(ok(network, config, "health", "--committee", "--json").stdout)
    assert report["latestSeq"] is None
    answers = report["healthInfo"]
    assert network.network is not None
    assert len(answers) == len(network.network.nodes)
    for answer in answers:
        assert answer["healthInfo"]["Ok"]["nodeStatus"] == "Active", answer
        assert answer["nodeId"].startswith("0x") and answer["nodeUrl"]
    chosen = answers[-1]
    by_id = json.loads(
        ok(network, config, "health", "--node-ids", chosen["nodeId"], "--detail", "--json").stdout
    )
    [one] = by_id["healthInfo"]
    assert one["nodeId"] == chosen["nodeId"] and "shardDetail" in one["healthInfo"]["Ok"]
    by_url = json.loads(
        ok(network, config, "health", "--node-urls", chosen["nodeUrl"], "--json").stdout
    )
    assert [a["nodeId"] for a in by_url["healthInfo"]] == [chosen["nodeId"]]
    text = ok(network, config, "health", "--committee", "--sort-by", "url").stdout
    assert f"{len(answers)} nodes, {len(answers)} answered, 0 did not." in text

    unknown = run(network, config, "health", "--node-urls", "127.0.0.1:1")
    assert unknown.exit_code == 1 and "no node of the committee" in unknown.output
    fixed = run(network, config, "health", "--active-set")
    assert fixed.exit_code == 1 and "fixed committee" in fixed.output
    neither = run(network, config, "health")
    assert neither.exit_code == 2 and "exactly one of --node-ids" in neither.output


# --- attributes -----------------------------------------------------------------------------------


def test_blob_attributes_set_read_and_removed(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    created = _store(network, config, _file(tmp_path, "attr", b"with attributes"), "--epochs", "2")
    object_id = created["newlyCreated"]["blobObject"]["id"]
    none = json.loads(ok(network, config, "get-blob-attribute", object_id, "--json").stdout)
    assert none == {"attribute": None}
    assert "has no attribute" in ok(network, config, "get-blob-attribute", object_id).stdout

    set_ = ok(
        network, config, "set-blob-attribute", object_id, "--attr", "content-type", "text/plain",
        "--attr", "note", "a value, with commas", "--json",
    )  # fmt: skip
    contents = [
        {"key": "content-type", "value": "text/plain"},
        {"key": "note", "value": "a value, with commas"},
    ]
    assert json.loads(set_.stdout) == {
        "objectId": object_id,
        "attribute": {"metadata": {"contents": contents}},
    }
    ok(network, config, "set-blob-attribute", object_id, "--attr", "content-type", "text/html")
    got = json.loads(ok(network, config, "get-blob-attribute", object_id, "--json").stdout)
    assert [pair["key"] for pair in got["attribute"]["metadata"]["contents"]] == [
        "note",
        "content-type",
    ]  # an update moves the key to the end
    text = ok(network, config, "get-blob-attribute", object_id).stdout
    assert "  content-type: text/html" in text

    missing = run(
        network, config, "remove-blob-attribute-fields", object_id, "--keys", "note", "absent"
    )
    assert missing.exit_code == 1 and "has no attribute key 'absent'" in missing.output
    removed = ok(
        network, config, "remove-blob-attribute-fields", object_id, "--keys", "note", "--json"
    )
    assert json.loads(removed.stdout)["attribute"]["metadata"]["contents"] == [
        {"key": "content-type", "value": "text/html"}
    ]
    gone = json.loads(ok(network, config, "remove-blob-attribute", object_id, "--json").stdout)
    assert gone == {"objectId": object_id, "attribute": None}
    again = run(network, config, "remove-blob-attribute", object_id)
    assert again.exit_code == 1 and "has no attribute" in again.output

    unknown = "0x" + "cd" * 32
    assert run(network, config, "get-blob-attribute", unknown).exit_code == 1
    foreign = run(network, config, "set-blob-attribute", unknown, "--attr", "a", "b")
    assert foreign.exit_code == 1 and f"no blob object {unknown}" in foreign.output
    bad = run(network, config, "set-blob-attribute", object_id, "--attr", "k", "v" * 1025)
    assert bad.exit_code == 1 and "longer than 1024 bytes" in bad.output
    usage = run(network, config, "set-blob-attribute", object_id)
    assert usage.exit_code == 2 and "--attr" in usage.output


# --- shared blobs ---------------------------------------------------------------------------------


def test_share_fund_and_extend_a_shared_blob(
    network: ThreadedNetwork, config: Path, tmp_path: Path
) -> None:
    created = _store(network, config, _file(tmp_path, "s", b"to share"), "--epochs", "2")
    blob = created["newlyCreated"]["blobObject"]
    settle(network)
    shared = json.loads(
        ok(network, config, "share", "--blob-obj-id", blob["id"], "--amount", "5",
           "--json").stdout
    )  # fmt: skip
    shared_id = shared["sharedBlobObjectId"]
    assert shared["amount"] == 5 and shared_id.startswith("0x")
    assert blob["id"] not in _owned_ids(network, config)  # given up for good
    again = run(network, config, "share", "--blob-obj-id", blob["id"])
    assert again.exit_code == 1 and f"no blob object {blob['id']}" in again.output

    poor = run(network, config, "extend", "--blob-obj-id", shared_id, "--shared",
               "--epochs-extended", "10")  # fmt: skip
    assert poor.exit_code == 1 and "has 5 FROST of funds" in poor.output
    funded = json.loads(
        ok(network, config, "fund-shared-blob", "--shared-blob-obj-id", shared_id, "--amount",
           "1000", "--json").stdout
    )  # fmt: skip
    assert funded == {"amount": 1000, "funds": 1005}
    extended = json.loads(
        ok(network, config, "extend", "--blob-obj-id", shared_id, "--shared",
           "--epochs-extended", "3", "--json").stdout
    )  # fmt: skip
    assert extended["objectId"] == blob["id"] and extended["endEpoch"] == (
        blob["storage"]["endEpoch"] + 3
    )
    text = ok(network, config, "extend", "--blob-obj-id", shared_id, "--shared",
              "--epochs-extended", "1").stdout  # fmt: skip
    assert "Shared blob" in text and "from the shared blob's funds" in text

    unknown = "0x" + "ef" * 32
    missing = run(network, config, "fund-shared-blob", "--shared-blob-obj-id", unknown,
                  "--amount", "1")  # fmt: skip
    assert missing.exit_code == 1 and f"no shared blob {unknown}" in missing.output
    zero = run(network, config, "fund-shared-blob", "--shared-blob-obj-id", shared_id,
               "--amount", "0")  # fmt: skip
    assert zero.exit_code == 2


def test_store_share(network: ThreadedNetwork, config: Path, tmp_path: Path) -> None:
    path = _file(tmp_path, "stored-shared", b"stored and shared at once")
    created = _store(network, config, path, "--epochs", "2", "--share")["newlyCreated"]
    shared_id = created["sharedBlobObject"]
    assert shared_id.startswith("0x")
    assert created["blobObject"]["id"] not in _owned_ids(network, config)
    text = ok(network, config, "store", str(_file(tmp_path, "t", b"text")), "--epochs", "2",
              "--share").stdout  # fmt: skip
    assert "Shared blob object: 0x" in text
