"""Wire errors become typed exceptions with their details (no server needed: the decoding alone)."""

from tokenledger import errors, pb


def test_wrong_owner_is_typed_and_names_the_owner():
    wire = pb.Error(code=pb.ERROR_CODE_WRONG_OWNER, message="shard 3 is served by db2:7443",
                    owner=pb.OwnerDetails(shard=3, address="db2:7443", epoch=7))
    error = errors.from_wire(wire)
    assert isinstance(error, errors.WrongOwner)
    assert error.code == "wrong_owner" and not error.retryable
    assert error.details == {"shard": 3, "address": "db2:7443", "epoch": 7, "kind": "owner"}


def test_an_unknown_code_becomes_unavailable():
    error = errors.from_wire(pb.Error(code=99, message="from a newer server"))
    assert isinstance(error, errors.Unavailable) and error.retryable
