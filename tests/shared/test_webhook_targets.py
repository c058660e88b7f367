"""The address rules for webhooks, on literals in every spelling libc and browsers accept."""

from __future__ import annotations

import pytest

from seqserve.shared.webhook_targets import RefusedTarget, check_url, literal_address, parse_networks, resolve_checked

INTERNAL = ["http://127.0.0.1:5432/", "http://169.254.169.254/latest/", "http://[::1]:6379/", "http://2130706433/",
            "http://0x7f.1/", "http://017700000001/", "http://127.1/", "http://0x7f000001/", "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/", "http://metadata.google.internal/", "http://localhost/", "http://a.localhost/",
            "http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.0.1/", "http://100.64.0.1/", "http://[fe80::1]/",
            "http://[fc00::1]/", "http://224.0.0.1/", "http://[ff02::1]/", "http://0.0.0.0/", "http://[::]/",
            "http://240.0.0.1/", "http://127.0.0.1./"]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_literals_and_names_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget):
        check_url(url)


@pytest.mark.parametrize("url", ["http://user@example.com/", "http://u:p@example.com/", "ftp://example.com/",
                                 "file:///etc/passwd", "http:///nohost"])
def test_credentials_other_schemes_and_no_host_are_refused(url: str) -> None:
    with pytest.raises(RefusedTarget):
        check_url(url)


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://93.184.216.34:8080/", "http://[2606:4700::1]/"])
def test_public_targets_pass(url: str) -> None:
    check_url(url)


def test_odd_ipv4_spellings_read_as_libc_reads_them() -> None:
    assert {str(literal_address(host)) for host in ["2130706433", "0x7f.1", "017700000001", "127.1", "0177.0.0.1"]} == {
        "127.0.0.1"}
    assert literal_address("example.com") is None and literal_address("1.2.3.4.5") is None


def test_an_allowlisted_network_passes_and_only_it() -> None:
    allow = parse_networks("127.0.0.0/8, fd00::/8")
    check_url("http://127.0.0.1:9/", allow)
    check_url("http://[::ffff:127.0.0.1]/", allow)
    with pytest.raises(RefusedTarget):
        check_url("http://10.0.0.1/", allow)


def test_any_internal_answer_refuses_the_name() -> None:
    with pytest.raises(RefusedTarget, match="10.0.0.5"):
        resolve_checked("hooks.example.com", 443, (), lambda host, port: ["93.184.216.34", "10.0.0.5"])
    assert resolve_checked("hooks.example.com", 443, (), lambda host, port: ["93.184.216.34"]) == "93.184.216.34"
    with pytest.raises(RefusedTarget):
        resolve_checked("hooks.example.com", 443, (), lambda host, port: [])
