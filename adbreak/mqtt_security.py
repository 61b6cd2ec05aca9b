"""MQTT credentials and TLS for both sides (the edge's ``MqttLink`` and the server's ``MqttBridge``), paho-mqtt 2.x.

* :func:`configure_tls` turns the TLS settings into ``client.tls_set(...)`` (+ ``tls_insecure_set``), checking the
  files first so that a typo is one readable :class:`~adbreak.errors.AdbreakError` at start-up, not a traceback.
  Without a CA file the system's trusted CAs are used; the broker's certificate is always verified, and so is its
  host name unless ``insecure`` (testing only) is set.
* :func:`connect_failure` says in one line why a connection attempt failed (called from paho's ``on_connect_fail``,
  which runs inside paho's ``except OSError`` block, so the exception is ``sys.exc_info()``).
* :func:`refusal_hint` adds what to check when the broker refuses the CONNECT (a wrong password is "Not authorized"
  or "Bad user name or password").
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbreak.errors import AdbreakError

_CREDENTIALS_REFUSED = (134, 135)  # MQTT 5 reason codes paho also gives for MQTT 3.1.1 CONNACK 4 and 5
_NAME_MISMATCH = (62, 64)  # OpenSSL X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@dataclass(frozen=True)
class TlsOptions:
    """TLS towards the broker. ``ca_file`` unset: the system's CAs; ``cert_file`` + ``key_file``: a client
    certificate for brokers that require one; ``insecure``: do not check that the certificate names the host."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


def configure_tls(client: Any, tls: TlsOptions) -> None:
    """Enable TLS on a paho client (before it connects). Raises :class:`AdbreakError` with one line."""
    for what, path in (("CA file", tls.ca_file), ("client certificate", tls.cert_file),
                       ("client key", tls.key_file)):
        if path is not None and not Path(path).is_file():
            raise AdbreakError(f"MQTT TLS: {what} {path} not found")
    if tls.key_file is not None and tls.cert_file is None:
        raise AdbreakError("MQTT TLS: a client key needs its client certificate (mqtt_cert_file)")
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file is not None else None,
            certfile=str(tls.cert_file) if tls.cert_file is not None else None,
            keyfile=str(tls.key_file) if tls.key_file is not None else None,
        )
    except ssl.SSLError as exc:
        raise AdbreakError(f"MQTT TLS: cannot use the certificate files: {exc.reason or exc}") from None
    except (OSError, ValueError) as exc:
        raise AdbreakError(f"MQTT TLS: {exc}") from None
    if tls.insecure:
        client.tls_insecure_set(True)


def connect_failure(exc: BaseException | None = None) -> str:
    """Why the last connection attempt failed, in one line (``exc`` defaults to the exception being handled)."""
    if exc is None:
        exc = sys.exc_info()[1]
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or str(exc)
        if exc.verify_code in _NAME_MISMATCH:
            hint = "connect by a name the certificate lists, or set mqtt_tls_insecure (testing only)"
        else:
            hint = "give the CA that signed the broker's certificate (mqtt_ca_file)"
        return f"the broker's TLS certificate is not trusted: {why}; {hint}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc}); is that port the broker's TLS listener?"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running, is the port right?)"
    if isinstance(exc, ConnectionResetError):
        return "the broker closed the connection (a TLS listener reached without TLS, or the other way round?)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return "unreachable"


def refusal_hint(reason_code: Any) -> str:
    """What to check when the broker refused the connection (empty when there is nothing specific)."""
    if getattr(reason_code, "value", None) in _CREDENTIALS_REFUSED:
        return "; check the MQTT user name and password (mqtt_username / mqtt_password)"
    return ""


def add_mqtt_security_options(p: Any) -> None:
    """The command-line options both ``adbreak edge`` and ``adbreak server`` take for broker credentials and TLS
    (an ``argparse.ArgumentParser``). The password is not among them (a command line is visible to every user of the
    machine): it comes from the config file or ``ADBREAK_*_MQTT_PASSWORD``."""
    g = p.add_argument_group("MQTT credentials and TLS (password: config file or ADBREAK_*_MQTT_PASSWORD)")
    g.add_argument("--mqtt-user", metavar="USER", help="broker user name")
    g.add_argument("--mqtt-tls", action="store_true", default=None, help="connect with TLS (usually port 8883)")
    g.add_argument("--mqtt-ca", metavar="FILE", help="CA certificate(s) that signed the broker's (default: the "
                   "system's)")
    g.add_argument("--mqtt-cert", metavar="FILE", help="client certificate, for brokers that require one")
    g.add_argument("--mqtt-key", metavar="FILE", help="private key of the client certificate")
    g.add_argument("--mqtt-tls-insecure", action="store_true", default=None,
                   help="do not check that the broker's certificate names the host (testing only)")


def mqtt_security_overrides(args: Any) -> dict[str, Any]:
    """The settings given by :func:`add_mqtt_security_options`' options (``None``: not given)."""
    return {
        "mqtt_username": args.mqtt_user,
        "mqtt_tls": args.mqtt_tls,
        "mqtt_ca_file": args.mqtt_ca,
        "mqtt_cert_file": args.mqtt_cert,
        "mqtt_key_file": args.mqtt_key,
        "mqtt_tls_insecure": args.mqtt_tls_insecure,
    }
