"""TLS termination with a self-signed certificate: TLS 1.2+ only; skopeo with a cert dir."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image
from helpers.registry_client import expect
from helpers.server import Server, running_server
from helpers.tls import self_signed_cert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("tls")
    with running_server(workdir, tls=self_signed_cert(workdir / "certs")) as server:
        yield server


def handshake(server: Server, version: ssl.TLSVersion) -> str:
    """Complete a handshake offering only ``version``; return the negotiated protocol."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer legacy versions at all
    with (
        socket.create_connection((server.address, server.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def client_offers_tls11(cert: tuple[Path, Path]) -> bool:
    """Control: can this machine's OpenSSL complete a TLS 1.1 handshake at all (with a willing server)?"""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            try:
                server_ctx.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        probe = SimpleNamespace(address="127.0.0.1", port=port)
        try:
            return handshake(probe, ssl.TLSVersion.TLSv1_1) == "TLSv1.1"  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            return False
        finally:
            thread.join(10)


def test_https_with_verified_certificate(tls_server: Server) -> None:
    assert tls_server.url.startswith("https://")
    assert tls_server.tls is not None
    resp = requests.get(f"{tls_server.url}/v2/", verify=str(tls_server.tls[0]), timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.url}/v2/", timeout=10)  # the system CAs do not know it


def test_plain_http_is_not_served(tls_server: Server) -> None:
    try:
        resp = requests.get(f"http://{tls_server.hostport}/v2/", timeout=10)
    except requests.RequestException:
        return  # the TLS listener dropped the plain-HTTP request: fine
    assert resp.status_code >= 400, "the TLS port served plain HTTP"


def test_tls_versions(tls_server: Server) -> None:
    assert tls_server.tls is not None
    if not client_offers_tls11(tls_server.tls):
        pytest.skip(
            "this OpenSSL cannot offer TLS 1.1 even to a willing server; the refusal would prove nothing"
        )
    assert handshake(tls_server, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(tls_server, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(tls_server, ssl.TLSVersion.TLSv1_1)


def test_skopeo_over_tls(tmp_path: Path, tools: ContainerTools, tls_server: Server) -> None:
    require_tool("skopeo")
    assert tls_server.tls is not None
    certs = tmp_path / "skopeo-certs"
    certs.mkdir()
    shutil.copy(tls_server.tls[0], certs / "ca.crt")
    image = build_image(n_layers=1)
    layout = OCILayout(tmp_path / "src").write({"v1": image})
    dest = f"docker://{tls_server.hostport}/tls/image:v1"

    tools.skopeo_copy(f"oci:{layout.path}:v1", dest, f"--dest-cert-dir={certs}", dest_tls_verify=True)
    tools.skopeo_copy(f"oci:{layout.path}:v1", f"docker://{tls_server.hostport}/tls/unverified:v1")

    registry = tls_server.client()
    for name in ("tls/image", "tls/unverified"):
        head = expect(registry.head_manifest(name, "v1"), 200)
        assert head.headers["Docker-Content-Digest"] == image.digest
