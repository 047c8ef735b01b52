"""Setuptools shim: metadata lives in setup.cfg; the package layout is computed here.

The repository keeps `export/` and `tuning/` at its top (the user's layout), but they install as
`tf_seqmodels.export` and `tf_seqmodels.tuning`, so nothing with a generic name lands in the
user's site-packages.
"""

from setuptools import find_packages, setup

NAMESPACED_FOLDERS = ("export", "tuning")

packages = find_packages(include=["tf_seqmodels", "tf_seqmodels.*"])
package_dir = {}
for folder in NAMESPACED_FOLDERS:
  for package in find_packages(include=[folder, f"{folder}.*"]):
    packages.append(f"tf_seqmodels.{package}")
  package_dir[f"tf_seqmodels.{folder}"] = folder

setup(packages=packages, package_dir=package_dir)
