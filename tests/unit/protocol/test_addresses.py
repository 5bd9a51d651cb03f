"""Node address patterns: what ``nodes=[...]`` expands to."""

from __future__ import annotations

import pytest

from gridlib.protocol.addresses import MAX_TARGETS, expand_targets, split_host_port

PORT = 51352


def test_host_names_and_ips_get_the_default_port() -> None:
    assert expand_targets(["node1", "192.0.2.7", "::1"], PORT) == [
        ("node1", PORT), ("192.0.2.7", PORT), ("::1", PORT),
    ]


def test_host_with_port() -> None:
    assert expand_targets(["node1:6000", "192.0.2.7:6001", "[2001:db8::1]:6002"], PORT) == [
        ("node1", 6000), ("192.0.2.7", 6001), ("2001:db8::1", 6002),
    ]


def test_bracketed_ipv6_without_port_gets_the_default() -> None:
    assert split_host_port("[2001:db8::1]", PORT) == ("2001:db8::1", PORT)


@pytest.mark.parametrize("spec", ["node1:0", "node1:65536", "node1:http", "node1:", " "])
def test_bad_port_or_empty_address_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        expand_targets([spec], PORT)


def test_wildcard_expands_to_the_254_hosts_of_the_subnet() -> None:
    targets = expand_targets(["192.168.1.*"], PORT)

    assert len(targets) == 254
    assert targets[0] == ("192.168.1.1", PORT)
    assert targets[-1] == ("192.168.1.254", PORT)
    assert ("192.168.1.0", PORT) not in targets and ("192.168.1.255", PORT) not in targets


def test_wildcard_with_port() -> None:
    targets = expand_targets(["10.1.2.*:7000"], PORT)

    assert len(targets) == 254
    assert {port for _, port in targets} == {7000}


@pytest.mark.parametrize("spec", ["10.1.*.*", "10.*.2.3", "10.1.*", "10.1.2.1*", "node*"])
def test_only_the_last_octet_may_be_a_wildcard(spec: str) -> None:
    with pytest.raises(ValueError, match="a.b.c.*"):
        expand_targets([spec], PORT)


def test_cidr_expands_to_its_hosts() -> None:
    assert expand_targets(["198.51.100.0/30"], PORT) == [("198.51.100.1", PORT), ("198.51.100.2", PORT)]
    assert expand_targets(["198.51.100.9/32"], PORT) == [("198.51.100.9", PORT)]
    assert len(expand_targets(["198.51.100.0/31"], PORT)) == 2


def test_cidr_with_port() -> None:
    assert expand_targets(["198.51.100.0/30:6000"], PORT) == [
        ("198.51.100.1", 6000), ("198.51.100.2", 6000),
    ]


def test_cidr_with_host_bits_set_means_its_network() -> None:
    assert expand_targets(["198.51.100.78/30"], PORT) == [("198.51.100.77", PORT), ("198.51.100.78", PORT)]


def test_slash_22_is_the_widest_network_allowed() -> None:
    targets = expand_targets(["10.0.0.0/22"], PORT)

    assert len(targets) == 1022
    assert targets[0] == ("10.0.0.1", PORT)
    assert targets[-1] == ("10.0.3.254", PORT)


@pytest.mark.parametrize("spec", ["10.0.0.0/21", "10.0.0.0/8", "2001:db8::/64"])
def test_wider_networks_are_refused_with_a_clear_message(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        expand_targets([spec], PORT)

    message = str(info.value)
    assert spec in message
    assert "/22" in message


def test_too_many_addresses_in_total_are_refused() -> None:
    with pytest.raises(ValueError, match=str(MAX_TARGETS)):
        expand_targets(["10.0.0.0/22", "10.0.4.0/22"], PORT)


@pytest.mark.parametrize("spec", ["10.0.0.0/33", "10.0.0.300/24", "not-a-net/24"])
def test_bad_networks_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad network"):
        expand_targets([spec], PORT)


@pytest.mark.parametrize("spec", ["198.51.100.0/30:99999", "198.51.100.0/30:0", "198.51.100.0/30:http"])
def test_bad_port_after_a_network_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        expand_targets([spec], PORT)


def test_duplicates_are_dropped_keeping_the_first_order() -> None:
    targets = expand_targets(
        ["198.51.100.2", "198.51.100.0/30", "198.51.100.1", "node1", "node1", "node1:6000",
         f"node1:{PORT}"],
        PORT,
    )

    assert targets == [
        ("198.51.100.2", PORT), ("198.51.100.1", PORT), ("node1", PORT), ("node1", 6000),
    ]


def test_no_patterns_no_targets() -> None:
    assert expand_targets([], PORT) == []
