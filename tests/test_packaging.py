"""What `pip install keras-genzoo` asks for: lower bounds only, no CPU pins.

The installed frameworks of a user (or of Colab) must satisfy the package's
requirements, newer and older supported releases alike, so that installing
it replaces none of them. The exact test pins live in
requirements/test-pins.txt, the lower bounds' test environment in
requirements/oldest.txt. (tools/check_wheel.py, run by `make test`, installs
the built wheel next to the test environment's frameworks with pip and
checks that it installs nothing else.)
"""

import os

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from packaging.requirements import Requirement  # noqa: E402
from packaging.version import Version  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("keras", "keras-hub", "tensorflow", "tensorflow-datasets",
              "jax", "torch")


def project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def user_requirements():
    """The core dependencies and the `jax` / `torch` extras."""
    meta = project()
    extras = meta["optional-dependencies"]
    return [Requirement(r) for r in
            meta["dependencies"] + extras["jax"] + extras["torch"]]


def pins(name):
    found = {}
    with open(os.path.join(ROOT, "requirements", name)) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                requirement = Requirement(line)
                (spec,) = requirement.specifier
                found[requirement.name] = spec.version
    return found


def test_frameworks_have_no_upper_bounds_pins_or_cpu_builds():
    for requirement in user_requirements():
        if requirement.name not in FRAMEWORKS:
            continue
        assert not requirement.extras, requirement  # e.g. jax[cpu]
        for spec in requirement.specifier:
            assert spec.operator == ">=", requirement


@pytest.mark.parametrize("name,version", [
    ("keras", "3.15.1"), ("keras", "3.16.0"), ("keras", "4.0.0"),
    ("keras-hub", "0.21.1"), ("keras-hub", "0.40.0"),
    ("tensorflow", "2.19.1"), ("tensorflow", "2.20.0"), ("tensorflow", "2.23"),
    ("jax", "0.4.38"), ("jax", "0.11.0"),
    ("torch", "2.5.1"), ("torch", "2.15.0+cu126"), ("torch", "2.13.0+cpu"),
])
def test_supported_framework_releases_satisfy_the_requirements(name,
                                                               version):
    (requirement,) = [r for r in user_requirements() if r.name == name]
    assert requirement.specifier.contains(Version(version),
                                          prereleases=True), requirement


@pytest.mark.parametrize("pins_file", ["test-pins.txt", "oldest.txt"])
def test_test_environments_satisfy_the_requirements(pins_file):
    pinned = pins(pins_file)
    for requirement in user_requirements():
        if requirement.name in pinned:
            assert requirement.specifier.contains(
                Version(pinned[requirement.name])), (pins_file, requirement)


def test_lower_bounds_are_the_oldest_tested_releases():
    oldest = pins("oldest.txt")
    for requirement in user_requirements():
        if requirement.name in ("keras", "keras-hub", "tensorflow"):
            (spec,) = requirement.specifier
            assert Version(oldest[requirement.name]).release[:2] == \
                Version(spec.version).release[:2], requirement


def test_the_genzoo_command_is_a_console_script():
    assert project()["scripts"] == {"genzoo": "keras_genzoo.cli:main"}
