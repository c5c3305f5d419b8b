"""Independent check of the SCTs embedded in a certificate (RFC 6962), using only the Python
`cryptography` package: rebuilds each SCT's signed data (the precert_entry of RFC 6962 §3.2:
issuer_key_hash + the TBSCertificate without the SCT list) from the final certificate and its
issuer, and verifies it with the key of the log whose id (SHA-256 of its SPKI) it names.

usage: ct_verify.py CERT.pem ISSUER.pem LOGKEY.pem...
prints "OK <log id hex>" per verified SCT; exits 1 on any failure or unknown log.
"""
import calendar
import hashlib
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def main():
    cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
    issuer = x509.load_pem_x509_certificates(open(sys.argv[2], "rb").read())[0]
    logs = {}
    for path in sys.argv[3:]:
        key = serialization.load_pem_public_key(open(path, "rb").read())
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        logs[hashlib.sha256(spki).digest()] = key
    issuer_spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer_key_hash = hashlib.sha256(issuer_spki).digest()
    scts = cert.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    ).value
    tbs = cert.tbs_precertificate_bytes  # the TBSCertificate without the SCT list
    if not scts:
        print("no SCTs")
        return 1
    for sct in scts:
        key = logs.get(sct.log_id)
        if key is None:
            print("unknown log", sct.log_id.hex())
            return 1
        ts = sct.timestamp
        ms = calendar.timegm(ts.utctimetuple()) * 1000 + ts.microsecond // 1000
        ext = sct.extension_bytes
        data = (
            struct.pack(">BBQH", 0, 0, ms, 1)
            + issuer_key_hash
            + struct.pack(">I", len(tbs))[1:]
            + tbs
            + struct.pack(">H", len(ext))
            + ext
        )
        try:
            key.verify(sct.signature, data, ec.ECDSA(hashes.SHA256()))
        except Exception as e:  # InvalidSignature
            print("BAD", sct.log_id.hex(), type(e).__name__)
            return 1
        print("OK", sct.log_id.hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
