"""Our JWK and JWS code (tools/returns-jose) against an independent JOSE implementation,
python3-jwcrypto: keys and signatures must cross over in both directions, and what our
policy forbids (alg none, HS256, crit, tampering) must be refused by ours even when
jwcrypto made it.

Run from tests/integration by `make integration` (binaries built by `make`)."""

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import JWSEHeaderParameter, json_decode, json_encode

ROOT = Path(__file__).resolve().parent.parent.parent
TOOL = Path(os.environ.get("RETURNS_JOSE", ROOT / "tools" / "returns-jose"))
KID = "2165000123"

PAYLOADS = [
    pytest.param(b'{"form":"incident","school_id":"2165000123","data":{"level":2}}', id="ascii"),
    pytest.param(
        '{"school":"乌鲁木齐市第一中学","measure":"防范中小学生欺凌和校园暴力专项治理"}'.encode(),
        id="chinese",
    ),
    pytest.param(bytes(range(256)) * 3, id="binary"),
    pytest.param(b"", id="empty"),
]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(*args, check=True):
    assert TOOL.exists(), f"{TOOL} is missing: run make first"
    proc = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, timeout=30)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def keygen(tmp_path, kid=KID):
    priv, pub = tmp_path / "school.jwk", tmp_path / "school.pub.jwk"
    run("keygen", "--kid", kid, priv, pub)
    return priv, pub


def write_jwcrypto_key(tmp_path, key, name):
    """Both halves of a jwcrypto key as files our tool can load (private mode 0600)."""
    priv, pub = tmp_path / f"{name}.jwk", tmp_path / f"{name}.pub.jwk"
    priv.write_text(key.export_private())
    priv.chmod(0o600)
    pub.write_text(key.export_public())
    return priv, pub


def jwcrypto_sign(key, payload, protected, header=None, registry=None, algs=None):
    token = jws.JWS(payload, header_registry=registry)
    if algs:
        token.allowed_algs = algs
    token.add_signature(
        key,
        alg=protected["alg"],
        protected=json_encode(protected),
        header=json_encode(header) if header else None,
    )
    return token.serialize()  # flattened JSON: one signature


def verify_ours(tmp_path, pub, text):
    path = tmp_path / "in.jws"
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return run("verify", pub, path, check=False)


def test_keygen_keys_load_in_jwcrypto(tmp_path):
    priv, pub = keygen(tmp_path)
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pub).st_mode) == 0o644

    private = jwk.JWK.from_json(priv.read_text())
    public = jwk.JWK.from_json(pub.read_text())
    assert private.has_private and not public.has_private
    for key in (private, public):
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["kid"] == KID
    assert json.loads(private.export_public())["x"] == json.loads(pub.read_text())["x"]
    assert "d" not in json.loads(pub.read_text())

    # RFC 7638 thumbprints agree, from either file
    assert run("thumbprint", pub).stdout.decode().strip() == public.thumbprint()
    assert run("thumbprint", priv).stdout.decode().strip() == private.thumbprint()

    # the private key really is the key: jwcrypto signs, and its public half verifies
    signed = jwcrypto_sign(private, b"{}", {"alg": "EdDSA", "kid": KID})
    proc = verify_ours(tmp_path, pub, signed)
    assert proc.returncode == 0, proc.stderr.decode()


def test_private_key_file_mode(tmp_path):
    priv, pub = keygen(tmp_path)
    (tmp_path / "p").write_bytes(b"{}")
    priv.chmod(0o644)
    proc = run("sign", priv, KID, tmp_path / "p", check=False)
    assert proc.returncode == 1
    assert b"mode 0644 lets group or others access it" in proc.stderr
    priv.chmod(0o600)
    run("sign", priv, KID, tmp_path / "p")
    # keygen does not overwrite a key
    proc = run("keygen", "--kid", KID, priv, tmp_path / "other.pub.jwk", check=False)
    assert proc.returncode == 1 and b"exists" in proc.stderr


@pytest.mark.parametrize("payload", PAYLOADS)
def test_our_jws_verifies_in_jwcrypto(tmp_path, payload):
    priv, pub = keygen(tmp_path)
    (tmp_path / "payload").write_bytes(payload)
    text = run("sign", priv, KID, tmp_path / "payload").stdout

    envelope = json.loads(text)
    assert sorted(envelope) == ["payload", "protected", "signature"]
    assert json_decode(base64.urlsafe_b64decode(envelope["protected"] + "==")) == {
        "alg": "EdDSA",
        "kid": KID,
    }

    token = jws.JWS()
    token.deserialize(text.decode(), key=jwk.JWK.from_json(pub.read_text()), alg="EdDSA")
    assert token.payload == payload
    assert token.jose_header == {"alg": "EdDSA", "kid": KID}

    # and ours agrees with itself
    proc = verify_ours(tmp_path, pub, text)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == payload


@pytest.mark.parametrize("payload", PAYLOADS)
def test_jwcrypto_jws_verifies_with_ours(tmp_path, payload):
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    priv, pub = write_jwcrypto_key(tmp_path, key, "jwcrypto")
    text = jwcrypto_sign(key, payload, {"alg": "EdDSA", "kid": KID})
    assert "signatures" not in json.loads(text)

    proc = verify_ours(tmp_path, pub, text)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == payload

    # a jwcrypto private key also signs with ours, for jwcrypto to verify
    (tmp_path / "payload").write_bytes(payload)
    ours = run("sign", priv, KID, tmp_path / "payload").stdout.decode()
    token = jws.JWS()
    token.deserialize(ours, key=jwk.JWK.from_json(pub.read_text()), alg="EdDSA")
    assert token.payload == payload
    assert run("thumbprint", pub).stdout.decode().strip() == key.thumbprint()


def test_jwcrypto_unprotected_header_is_accepted(tmp_path):
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    _, pub = write_jwcrypto_key(tmp_path, key, "jwcrypto")
    text = jwcrypto_sign(key, b"{}", {"alg": "EdDSA", "kid": KID}, header={"note": "unsigned"})
    assert "header" in json.loads(text)
    proc = verify_ours(tmp_path, pub, text)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"{}"


def refused(tmp_path, pub, text, message):
    proc = verify_ours(tmp_path, pub, text)
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout == b""
    assert message.encode() in proc.stderr, proc.stderr.decode()


def test_jwcrypto_alg_none_is_refused(tmp_path):
    _, pub = keygen(tmp_path)
    text = jwcrypto_sign(
        jwk.JWK(kty="oct", k=""), b"{}", {"alg": "none", "kid": KID}, algs=["none"]
    )
    assert json.loads(text)["signature"] == ""
    refused(tmp_path, pub, text, 'alg "none" is not allowed, only EdDSA')


def test_jwcrypto_hs256_is_refused(tmp_path):
    _, pub = keygen(tmp_path)
    secret = jwk.JWK.generate(kty="oct", size=256)
    text = jwcrypto_sign(secret, b"{}", {"alg": "HS256", "kid": KID})
    refused(tmp_path, pub, text, 'alg "HS256" is not allowed, only EdDSA')
    # the classic confusion: the HMAC key is the Ed25519 public key's bytes
    x = json.loads(pub.read_text())["x"]
    confused = jwk.JWK(kty="oct", k=b64url(x.encode()))
    text = jwcrypto_sign(confused, b"{}", {"alg": "HS256", "kid": KID})
    refused(tmp_path, pub, text, 'alg "HS256" is not allowed')


def test_jwcrypto_crit_is_refused(tmp_path):
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    _, pub = write_jwcrypto_key(tmp_path, key, "jwcrypto")
    registry = {"exp": JWSEHeaderParameter("Expiry", False, True, None)}
    protected = {"alg": "EdDSA", "kid": KID, "crit": ["exp"], "exp": 1717000000}
    text = jwcrypto_sign(key, b"{}", protected, registry=registry)
    # jwcrypto itself accepts it when told it understands "exp"
    token = jws.JWS(header_registry=registry)
    token.deserialize(text, key=key, alg="EdDSA")
    refused(tmp_path, pub, text, '"crit" is present, but no extension is understood')


def test_jwcrypto_tampered_payload_is_refused(tmp_path):
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    _, pub = write_jwcrypto_key(tmp_path, key, "jwcrypto")
    envelope = json.loads(jwcrypto_sign(key, b'{"victims":1}', {"alg": "EdDSA", "kid": KID}))
    envelope["payload"] = b64url(b'{"victims":0}')
    text = json.dumps(envelope)
    # the oracle refuses it too
    with pytest.raises(jws.InvalidJWSSignature):
        jws.JWS().deserialize(text, key=key, alg="EdDSA")
    refused(tmp_path, pub, text, "signature does not verify")


def test_jwcrypto_wrong_key_and_kid_are_refused(tmp_path):
    _, pub = keygen(tmp_path)
    stranger = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    text = jwcrypto_sign(stranger, b"{}", {"alg": "EdDSA", "kid": KID})
    refused(tmp_path, pub, text, "signature does not verify")
    text = jwcrypto_sign(stranger, b"{}", {"alg": "EdDSA", "kid": "2165000999"})
    refused(tmp_path, pub, text, "kid does not match the key")


def test_jwcrypto_general_serialization_is_refused(tmp_path):
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=KID)
    _, pub = write_jwcrypto_key(tmp_path, key, "jwcrypto")
    token = jws.JWS(b"{}")
    for _ in range(2):
        token.add_signature(key, alg="EdDSA", protected=json_encode({"alg": "EdDSA", "kid": KID}))
    text = token.serialize()
    assert "signatures" in json.loads(text)
    refused(tmp_path, pub, text, "general JSON serialization")
