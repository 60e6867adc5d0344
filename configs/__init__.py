"""Run configs, one `get_config(preset)` file per family (see speechjax/config.py).

setup.py ships this folder inside the package as `speechjax.configs`, so that an installed speechjax resolves
`configs/<family>.py:<preset>` from any directory.
"""
