"""SPKI pins: the same value openssl computes, both written forms, backups, bad input."""

import base64
import shutil
import subprocess

import pytest

from viworks_verify.pki import certs
from viworks_verify.pki.pins import PinFormatError, matching_pin, parse_pin, parse_pins, spki_pin

CA = certs.new_ca("Test CA")
LEAF = certs.issue(CA, "agent.example.com", server=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_pin_equals_the_openssl_pipeline():
    pem = LEAF.cert_pem()
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem, capture_output=True, check=True).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pubkey, capture_output=True, check=True
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True
    ).stdout
    assert spki_pin(pem) == base64.b64encode(digest).decode()


def test_bare_and_prefixed_forms_are_both_accepted_and_reported():
    pin = spki_pin(LEAF.certificate)
    assert parse_pin(pin).form == "bare"
    assert parse_pin("sha256/" + pin).form == "sha256/-prefixed"
    assert parse_pin("sha256/" + pin).value == pin


def test_a_backup_pin_matches_when_the_primary_does_not():
    other = spki_pin(certs.issue(CA, "other", server=True).certificate)
    configured = parse_pins(f"sha256/{other}, {spki_pin(LEAF.certificate)}")
    assert matching_pin(configured, LEAF.certificate) == configured[1]
    assert matching_pin(parse_pins(other), LEAF.certificate) is None


@pytest.mark.parametrize("text", ["", "dummy", "sha256/AAAA", base64.b64encode(b"x" * 31).decode(), "!!!!"])
def test_pins_that_are_not_base64_of_32_bytes_are_refused(text):
    with pytest.raises(PinFormatError):
        parse_pins(text)


def test_certificate_helpers():
    assert certs.common_name(LEAF.certificate) == "agent.example.com"
    assert certs.key_matches(LEAF.certificate, LEAF.key)
    assert not certs.key_matches(LEAF.certificate, certs.new_key())
    assert certs.chains_to(LEAF.certificate, [CA.certificate])
    assert not certs.chains_to(LEAF.certificate, [certs.new_ca("Test CA").certificate])  # same name, other key
    assert 364 < certs.days_left(LEAF.certificate) <= 365
    assert certs.describe(LEAF.certificate)["spki_pin"] == spki_pin(LEAF.certificate)


def test_a_chain_through_an_intermediate_leads_to_the_root_only_with_the_intermediate_at_hand():
    root = certs.new_ca("Root CA")
    intermediate = certs.new_ca("Issuing CA", issuer=root)
    leaf = certs.issue(intermediate, "gw-lab-01", server=False).certificate
    assert certs.chains_to(leaf, [root.certificate], [intermediate.certificate])  # the file carries the intermediate
    assert certs.chains_to(leaf, [root.certificate, intermediate.certificate])  # or the bundle does
    assert not certs.chains_to(leaf, [root.certificate])  # neither: no path of signatures
    stranger = certs.new_ca("Root CA")  # the same name, another key: names alone prove nothing
    assert not certs.chains_to(leaf, [stranger.certificate], [intermediate.certificate])
