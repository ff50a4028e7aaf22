"""Ascend specs added for the chips users run: 910B4 (32 GB) apart from 910B4-1 (64 GB), and
the Atlas A3 dies (Ascend910_93xx); each with the documents its figures come from."""

from __future__ import annotations

import pytest

from bounds import specs

GIB = 2**30


@pytest.mark.parametrize(
    "name, key",
    [
        ("Ascend910B4", "ascend_910b4"),
        ("Ascend910B4-1", "ascend_910b4_1"),
        ("Ascend910B4_1", "ascend_910b4_1"),  # the runtime's enum spelling
        ("Ascend910_9391", "ascend_910_93"),
        ("Ascend910_9392", "ascend_910_93"),
        ("Ascend910_9382", "ascend_910_93"),
        ("Ascend910_9362", "ascend_910_93"),
        ("atlas_a3", "ascend_910_93"),
        ("ascend_910c", "ascend_910_93"),
    ],
)
def test_lookup(name, key):
    assert specs.lookup(name).key == key


def test_910b4_memory_tells_the_variants_apart():
    assert specs.SPECS["ascend_910b4"].memory_bytes == 32 * GIB
    assert specs.SPECS["ascend_910b4_1"].memory_bytes == 64 * GIB
    assert specs.SPECS["ascend_910_93"].memory_bytes == 64 * GIB  # per die


def test_a3_is_per_die_and_never_stricter_than_the_package_halved():
    a3 = specs.SPECS["ascend_910_93"]
    assert a3.peak_bandwidth_bytes_per_s >= 3.2e12 / 2
    assert a3.peak_flops_per_s >= 780e12 / 2


@pytest.mark.parametrize("key", ["ascend_910b4", "ascend_910b4_1", "ascend_910_93"])
def test_new_specs_cite_urls(key):
    assert "https://" in specs.SPECS[key].source


def test_not_confused_with_neighbours():
    assert specs.lookup("Ascend910B3").key == "ascend_910b3"
    assert specs.lookup("Ascend910A").key == "ascend_910"
    assert specs.lookup("Ascend950PR_9599") is None
