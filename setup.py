"""dvdgan_tf: DVD-GAN (Clark, Donahue, Simonyan 2019) in TensorFlow 2 / Keras 3.

Install exactly one TensorFlow wheel through an extra:
  pip install -e ".[cpu]"    # tensorflow-cpu: laptops, CI
  pip install -e ".[gpu]"    # tensorflow[and-cuda]: NVIDIA GPUs
  pip install -e ".[tpu]"    # tensorflow (Cloud TPU VMs bring their own libtpu)
Add ",test" for the test suite and ",notebooks" to execute the notebooks.
"""

import setuptools

TF_VERSION = "2.21.0"

setuptools.setup(
    name="dvdgan_tf",
    version="0.1.0",
    description="DVD-GAN video generation in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["dvdgan_tf", "dvdgan_tf.*"]),
    python_requires=">=3.10,<3.13",
    # No TensorFlow here on purpose: exactly one wheel comes from an extra, since
    # `tensorflow` and `tensorflow-cpu` in one venv break each other.
    install_requires=[
        "keras==3.15.1",
        "tensorboard==2.21.0",
        "tensorflow-datasets==4.9.10",
        "importlib_resources==7.1.0",
        "ml_collections==1.1.0",
        "absl-py==2.5.1",
        "numpy>=1.26,<2.5",
        "scipy==1.17.1",
        "imageio==2.38.1",
        "imageio-ffmpeg==0.8.1",
        "pillow==13.0.0",
        "psutil==7.2.2",
        "tqdm==4.70.1",
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "tpu": [f"tensorflow=={TF_VERSION}"],
        "test": [
            "pytest==9.1.1",  # 9.2 breaks pytest-xdist 3.8's --dist=loadgroup (#1386)
            "pytest-xdist==3.8.0",
            "ruff==0.17.6",
            "nbclient==0.11.0",
            "nbformat==5.11.1",
            "ipykernel==7.4.0",
            "matplotlib==3.10.9",  # tests/report_test.py plots
        ],
        "notebooks": ["nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0"],
        "report": ["matplotlib==3.10.9"],
    },
)
