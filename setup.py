import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithDocs(build_py):
    """Build the package with the documentation pages inside it (``bakthat/docs``), so
    ``bakthat docs`` and the pages ``--help`` points to exist after a plain pip install."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "bakthat" / "docs"
        target.mkdir(parents=True, exist_ok=True)
        for page in sorted((HERE / "docs").glob("*.md")):
            shutil.copyfile(page, target / page.name)


setup(
    name="bakthat",
    version="1.0.0.dev0",
    description="Compressed, encrypted, catalogued backups to a local directory, S3 or Swift",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["bakthat", "bakthat.*"]),
    cmdclass={"build_py": BuildWithDocs},
    install_requires=[
        "argparse-manpage>=4.5",
        "boto3>=1.34",
        "cryptography>=43",  # 43 added the decrepit Blowfish that reads bakthat 0.6's archives
        "events>=0.5",
        "pathspec>=0.12",
        "peewee>=3.17",
        "python-swiftclient>=4",
        "pyyaml>=6",
        "sh>=2",
        "shtab>=1.7",
        "tqdm>=4.66",
        "zlib-ng>=0.5",  # the S3 parts' CRC-32 (the default checksum), several times faster than zlib's
        "zstandard>=0.22",
    ],
    extras_require={
        "keystone": ["python-keystoneclient>=5"],  # Swift with auth_version 2 or 3
        "test": [
            "setuptools>=70.1", "wheel", "pytest>=8", "hypothesis>=6", "moto[server]>=5", "grandfatherson>=1.3",
            "psycopg2-binary>=2.9", "sh>=2", "python-keystoneclient>=5",
        ],
    },
    entry_points={
        "console_scripts": ["bakthat = bakthat.cli:run"],
        # the kit's fixtures (bakthat.testing), in every pytest run where bakthat is installed
        "pytest11": ["bakthat = bakthat.testing.pytest_plugin"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: System :: Archiving :: Backup",
    ],
)
