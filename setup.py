from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="bakthat",
    version="1.0.0.dev0",
    description="Compressed, encrypted, catalogued backups to a local directory or S3",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["bakthat", "bakthat.*"]),
    install_requires=[
        "boto3>=1.34",
        "cryptography>=42",
        "events>=0.5",
        "pathspec>=0.12",
        "peewee>=3.17",
        "pyyaml>=6",
        "sh>=2",
        "tqdm>=4.66",
        "zstandard>=0.22",
    ],
    extras_require={
        "test": ["setuptools>=70.1", "wheel", "pytest>=8", "hypothesis>=6", "moto[server]>=5", "grandfatherson>=1.3", "psycopg2-binary>=2.9", "sh>=2"],
    },
    entry_points={"console_scripts": ["bakthat = bakthat.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: System :: Archiving :: Backup",
    ],
)
