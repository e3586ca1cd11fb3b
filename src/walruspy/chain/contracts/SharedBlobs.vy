# pragma version ~=0.4.3
"""
@title Shared blobs: blob objects nobody owns, kept alive from funds anyone adds
@notice Port of Move `walrus::shared_blob` (spec/walrus-system.md 1.2, 4.1: Walrus's
    `share`, `fund-shared-blob`, `extend --shared` and the publisher's `share=true`). On Sui
    a SharedBlob is a shared object wrapping a Blob and a balance of WAL: anyone may add to
    the balance, and anyone may extend the blob's lifetime, paid from that balance. Here
    this contract holds the wrapped blob objects (System's owner of each is this contract,
    so nobody can delete, burn or transfer them any more) and one WAL balance, accounted per
    shared blob. A shared blob has an object ID of its own (keccak256(abi_encode(this
    contract, nonce)), as objects.vy makes IDs), as Sui gives the wrapper one.
    Sharing takes two transactions, because System moves a blob only at its owner's request:
    the owner transfers the blob object to this contract (System `transfer_blob`), then
    anyone calls `share(blob)`, which wraps it once and pulls the initial funds (possibly
    zero) from the caller. A blob transferred here is of no use to anyone until shared, and
    sharing it gives nothing to the caller, so there is no race worth winning.
    `extend(shared, epochs)` calls System `extend_blob`, which pulls the cost from this
    contract (it approved System for all its WAL when attached); the cost is taken from that
    blob's funds, and the call reverts with "insufficient funds" when they do not cover it.
    System names this contract from its constructor and it learns System once, from its
    deployer (`attach`), as the other annexes.
"""

interface SystemView:
    def shared_blobs() -> address: view
    def wal() -> address: view
    def owner_of(object_id: bytes32) -> address: view
    def kind_of(object_id: bytes32) -> uint8: view
    def extend_blob(blob_object_id: bytes32, extended_epochs: uint32): nonpayable

interface WalToken:
    def approve(spender: address, amount: uint256) -> bool: nonpayable
    def balanceOf(owner: address) -> uint256: view


# objects.vy KIND_BLOB.
KIND_BLOB: constant(uint8) = 2


struct SharedBlob:
    blob_object_id: bytes32
    funds: uint256


event BlobShared:
    shared_blob_id: indexed(bytes32)
    blob_object_id: indexed(bytes32)
    funds: uint256


event SharedBlobFunded:
    shared_blob_id: indexed(bytes32)
    amount: uint256
    funds: uint256


event SharedBlobExtended:
    shared_blob_id: indexed(bytes32)
    extended_epochs: uint32
    cost: uint256
    funds: uint256


# The deployer, who attaches this contract to its System once.
installer: public(address)
# The System whose blob objects are shared (empty until attached).
system: public(address)
# The WAL token (System's), read when attached.
wal: public(address)

# Shared blob IDs handed out so far.
shared_nonce: public(uint256)
_shared: HashMap[bytes32, SharedBlob]
# The shared blob wrapping a blob object (zero: none).
shared_blob_of: public(HashMap[bytes32, bytes32])


@deploy
def __init__():
    self.installer = msg.sender


@external
def attach(system_contract: address):
    """
    @notice Names the System whose blobs are shared (installer only, once), and approves it
        for this contract's WAL, which pays the extensions.
    """
    assert msg.sender == self.installer, "not the installer"
    assert self.system == empty(address), "already attached"
    assert system_contract.is_contract, "system is not a contract"
    assert staticcall SystemView(system_contract).shared_blobs() == self, "system does not name this contract"
    self.system = system_contract
    token: address = staticcall SystemView(system_contract).wal()
    self.wal = token
    assert extcall WalToken(token).approve(system_contract, max_value(uint256)), "approve failed"


@internal
@view
def _system() -> address:
    system_contract: address = self.system
    assert system_contract != empty(address), "not attached"
    return system_contract


@internal
def _pull(amount: uint256):
    """
    @notice Pulls `amount` WAL from the caller ("unpaid" on any failure, as System says).
    """
    if amount == 0:
        return
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        self.wal,
        abi_encode(msg.sender, self, amount, method_id=method_id("transferFrom(address,address,uint256)")),
        max_outsize=32,
        revert_on_failure=False,
    )
    assert success, "unpaid"
    assert len(response) == 0 or extract32(response, 0, output_type=uint256) == 1, "unpaid"


@internal
@view
def _get(shared_blob_id: bytes32) -> SharedBlob:
    shared: SharedBlob = self._shared[shared_blob_id]
    assert shared.blob_object_id != empty(bytes32), "unknown shared blob"
    return shared


@external
def share(blob_object_id: bytes32, amount: uint256) -> bytes32:
    """
    @notice Move `shared_blob::new` (amount 0) and `new_funded`: wraps a blob object that its
        owner transferred to this contract, with `amount` WAL from the caller. Returns the
        shared blob's ID. Emits BlobShared.
    """
    system_contract: address = self._system()
    assert staticcall SystemView(system_contract).kind_of(blob_object_id) == KIND_BLOB, "unknown blob"
    assert staticcall SystemView(system_contract).owner_of(blob_object_id) == self, "blob not transferred to this contract"
    assert self.shared_blob_of[blob_object_id] == empty(bytes32), "already shared"
    self.shared_nonce += 1
    shared_blob_id: bytes32 = keccak256(abi_encode(self, self.shared_nonce))
    self._pull(amount)
    self._shared[shared_blob_id] = SharedBlob(blob_object_id=blob_object_id, funds=amount)
    self.shared_blob_of[blob_object_id] = shared_blob_id
    log BlobShared(shared_blob_id=shared_blob_id, blob_object_id=blob_object_id, funds=amount)
    return shared_blob_id


@external
def fund(shared_blob_id: bytes32, amount: uint256):
    """
    @notice Move `shared_blob::fund`: adds `amount` WAL from the caller to the funds.
    """
    shared: SharedBlob = self._get(shared_blob_id)
    assert amount > 0, "zero amount"
    self._pull(amount)
    shared.funds += amount
    self._shared[shared_blob_id] = shared
    log SharedBlobFunded(shared_blob_id=shared_blob_id, amount=amount, funds=shared.funds)


@external
def extend(shared_blob_id: bytes32, extended_epochs: uint32):
    """
    @notice Move `shared_blob::extend`: extends the wrapped blob, paid from its funds (anyone
        may call it). System checks the blob and the epochs; the cost is what System pulled.
    """
    shared: SharedBlob = self._get(shared_blob_id)
    token: address = self.wal
    before: uint256 = staticcall WalToken(token).balanceOf(self)
    extcall SystemView(self._system()).extend_blob(shared.blob_object_id, extended_epochs)
    cost: uint256 = before - staticcall WalToken(token).balanceOf(self)
    assert cost <= shared.funds, "insufficient funds"
    shared.funds -= cost
    self._shared[shared_blob_id] = shared
    log SharedBlobExtended(
        shared_blob_id=shared_blob_id, extended_epochs=extended_epochs, cost=cost, funds=shared.funds
    )


@external
@view
def shared_blob(shared_blob_id: bytes32) -> SharedBlob:
    """
    @notice The wrapped blob object and the funds of a shared blob ("unknown shared blob"
        otherwise).
    """
    return self._get(shared_blob_id)
