"""Signed envelopes and key rotation: pure checks, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobmaster import ConfigurationError
from jobmaster.config import Config, env_overrides
from jobmaster.envelope import Envelope
from jobmaster.exceptions import SignatureError
from jobmaster.serialization import PickleSerializer
from jobmaster.signing import Signer, keys_of


def _env(**fields: object) -> Envelope:
    base: dict[str, object] = dict(id="job-1", cluster="c1", definition_id="pay",
                                   encoding="json", payload=b'{"amount":10}',
                                   created_at=1.0, due=1.0)
    base.update(fields)
    return Envelope.from_fields(**base)


def test_a_signature_covers_identity_and_arguments() -> None:
    signer = Signer([b"k1"])
    env = _env()
    env.signature = signer.sign(env)
    assert signer.verify(env)
    again = Envelope.from_bytes(env.to_bytes())  # it travels in the header
    assert again.signature == env.signature and signer.verify(again)
    for changed in (replace(env, id="job-2"), replace(env, cluster="c2"),
                    replace(env, definition_id="refund"), replace(env, payload=b'{"amount":99}'),
                    replace(env, options=replace(env.options, lane="other")),
                    replace(env, encoding="pickle")):
        assert not signer.verify(changed)  # a replay under another identity is refused
    assert signer.verify(env.next_attempt(5.0))  # a retry keeps its signature
    assert not signer.verify(_env())  # unsigned
    assert not Signer([b"other"]).verify(env)


def test_keys_rotate_newest_first() -> None:
    old, new = Signer([b"old"]), Signer([b"new", b"old"])
    env = _env()
    env.signature = old.sign(env)
    assert new.verify(env)  # still accepted while the old key is listed
    fresh = _env(id="job-9")
    fresh.signature = new.sign(fresh)
    assert new.verify(fresh) and not old.verify(fresh)  # signed with the first key
    assert not Signer([b"new"]).verify(env)  # the old key dropped: refused
    assert "new" not in repr(new) and "old" not in repr(new)


def test_pickle_payloads_rotate_too() -> None:
    pytest.importorskip("cloudpickle")
    data = PickleSerializer("old").dumps({"x": 1})
    assert PickleSerializer(["new", "old"]).loads(data) == {"x": 1}
    with pytest.raises(SignatureError):
        PickleSerializer(["new"]).loads(data)


def test_config_of_secrets_and_signing() -> None:
    assert not Config().signs
    assert Config(secret="k", serializer="pickle").signs
    assert Config(secret=["new", "old"], sign_envelopes=True).signs
    assert not Config(secret="k", serializer="pickle", sign_envelopes=False).signs
    assert "new" not in repr(Config(secret=["new", "old"]))
    with pytest.raises(ConfigurationError, match="sign_envelopes=True needs secret"):
        Config(sign_envelopes=True)
    with pytest.raises(ConfigurationError, match="non-empty list"):
        Config(secret=[])
    with pytest.raises(ConfigurationError, match="non-empty"):
        Config(secret=["ok", ""])
    assert env_overrides({"JOBMASTER_SECRET": " new  old "})["secret"] == ["new", "old"]
    assert env_overrides({"JOBMASTER_SECRET": "only"})["secret"] == "only"
    assert keys_of(["a", "b"]) == [b"a", b"b"] and keys_of(None) == []
