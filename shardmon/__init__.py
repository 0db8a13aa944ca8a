"""Shardmon, one package: the processes, the CLI and the launcher here, and the floors below them as
subpackages, ``shardmon.model``, ``shardmon.shards``, ``shardmon.ingest``, ``shardmon.querier``,
``shardmon.rules`` and ``shardmon.k8sapi``.

The floors are the repository's top-level folders model/, shards/, ingest/, querier/, rules/ and k8sapi/,
next to this one. An installed wheel holds them under shardmon/ (pyproject.toml's ``package-dir`` maps them), so
nothing called ``model`` lands at the top of site-packages. From a checkout (this folder's parent holds
pyproject.toml and model/), the parent folder is added to this package's ``__path__`` below, so
``import shardmon.model`` finds <checkout>/model/ of the same checkout as this file, whichever way Python
found this package (the editable install's finder, or the current folder on ``sys.path``). Only
``__path__`` changes: nothing is imported, and ``sys.path`` is left alone, so a bare ``import model``
still fails. (The checkout's other folders, bench/ and tests/, would import as shardmon.bench and
shardmon.tests too; nothing does, tests/unit/test_namespace.py sees to it.)
"""

import os as _os

_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_checkout, "pyproject.toml")) and _os.path.isfile(
        _os.path.join(_checkout, "model", "__init__.py")):
    __path__.append(_checkout)
