"""The packages of the wheel, found rather than listed (everything else is in pyproject.toml).

pyproject.toml's own package finder names packages after their folders under one root, so it can
find the code under ``src/`` but cannot ship ``conf/`` -- kept at the repository root, where the
checkout and the editable install read it -- as ``cfnet.conf``, where ``cfnet.cli.config`` finds
the configs of an installed wheel. Each folder of ``conf/`` is a package of its own there
(setuptools ships data files per package).
"""

from pathlib import Path

from setuptools import find_packages, setup

CONF = Path("conf")  # setuptools runs this from the project's root

conf_packages = ["cfnet.conf"] + [
    "cfnet.conf." + ".".join(folder.relative_to(CONF).parts)
    for folder in sorted(CONF.rglob("*"))
    if folder.is_dir()
]
setup(
    packages=find_packages("src") + conf_packages,
    package_dir={"": "src", "cfnet.conf": "conf"},
    package_data={
        **{package: ["*.yaml"] for package in conf_packages},
        "cfnet.explorer": ["static/*"],  # the explorer's page (HTML, JS, CSS)
    },
)
