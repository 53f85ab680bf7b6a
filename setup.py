"""Install with ``pip install -e .`` (configs/ is read from the repository checkout)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="lavis-video-captioning",
    version="0.1.0",
    description="LAVIS-style video captioning: BLIP-2 video captioners, datasets, tasks, pipelines",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lavis", "lavis.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={
        # selenium drives headless Chromium in the gallery test (Debian: chromium, chromium-driver).
        # pyarrow: the pipeline's Parquet output is optional for users, tested in CI.
        "test": ["pytest>=8", "selenium>=4.20", "pyarrow>=15"],
        # A third video backend; 0.13 is the CPU build matching torch 2.13 and needs the system's
        # FFmpeg libraries (Debian: apt-get install ffmpeg). Without them it is simply not used.
        "torchcodec": ["torchcodec==0.13.*"],
        # torchvision/timm stay optional: on CPU-only machines the registry's torchvision is a
        # CUDA build that fails to import against the CPU torch, and timm imports torchvision.
        "vision": ["torchvision", "timm"],
        # fairscale is not needed: torch.utils.checkpoint(use_reentrant=False) replaces it.
    },
)
